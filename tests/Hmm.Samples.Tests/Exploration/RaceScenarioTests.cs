using Hmm.Runtime.Scheduling;
using Hmm.Samples.TestHmm.Exploration;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Exploration;

/// <summary>Acceptance 1: every race scenario explored over a fixed seed range, injection on, without a failure.</summary>
[NonParallelizable]
public sealed class RaceScenarioTests
{
    private static IEnumerable<string> Names() => DmirrorRaces.All.Select(s => s.Name);

    [TestCaseSource(nameof(Names))]
    public void Explores_one_thousand_schedules_with_faults_injected_and_finds_nothing(string name)
    {
        RaceScenario scenario = DmirrorRaces.Find(name)!;
        var options = new ExploreOptions
        {
            Schedules = ScheduleCount,
            Seed = 12_000,
            Strategy = ExploreStrategy.Random,
            Inject = ExploreOptions.AllFaults,
            TraceDirectory = Path.Combine(TestContext.CurrentContext.WorkDirectory, "explore-traces"),
        };

        ExploreReport report = Explorer.Run(options, scenario.Body);

        TestContext.Out.WriteLine($"{name}: {report.Summary}, {report.SchedulesPerSecond:F0} schedules/s, {report.Steps} steps");
        Assert.That(report.Failures, Is.Zero, report.ToString());
        Assert.That(report.Schedules, Is.EqualTo(ScheduleCount));
    }

    /// <summary>
    /// Every scenario under PCT as well. Three of them (migrate-cpu-fault, fork-migration,
    /// device-removal-migration) used to fail here: a CPU thread retrying a fault on a page a
    /// migration held kept the highest priority and never let the holder run. The retry is now a
    /// yield point (SchedulePointKind.Yield) that lowers the spinning thread, as Coyote's PCT does.
    /// </summary>
    private static IEnumerable<TestCaseData> PctCases() => Names().Select(name => new TestCaseData(name));

    [TestCaseSource(nameof(PctCases))]
    public void Explores_under_pct_too(string name)
    {
        ExploreReport report = Explorer.Run(new ExploreOptions { Schedules = 200, Seed = 7, Strategy = ExploreStrategy.Pct, Inject = ExploreOptions.AllFaults },
            DmirrorRaces.Find(name)!.Body);

        TestContext.Out.WriteLine($"{name} (pct): {report}");
        Assert.That(report.Failures, Is.Zero, report.ToString());
    }

    [Test]
    public void Unknown_scenario_is_not_found() => Assert.That(DmirrorRaces.Find("no-such-race"), Is.Null);

    private const int ScheduleCount = 1000;
}
