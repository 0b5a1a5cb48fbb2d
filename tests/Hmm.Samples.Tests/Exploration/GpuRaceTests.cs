using Hmm.Runtime.Scheduling;
using Hmm.Samples.Nouveau.Exploration;
using Hmm.Samples.TestHmm.Exploration;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Exploration;

/// <summary>The GPU (Nouveau) race scenarios: explored with faults injected, listed in the catalogue, and a planted GPU bug found and replayed.</summary>
[NonParallelizable]
public sealed class GpuRaceTests
{
    private static IEnumerable<string> Names() => GpuRaces.All.Select(s => s.Name);

    [TestCaseSource(nameof(Names))]
    public void Explores_random_schedules_with_faults_injected_and_finds_nothing(string name)
    {
        ExploreReport report = Explorer.Run(new ExploreOptions
        {
            Schedules = 1000,
            Seed = 13_000,
            Strategy = ExploreStrategy.Random,
            Inject = ExploreOptions.AllFaults,
            TraceDirectory = Path.Combine(TestContext.CurrentContext.WorkDirectory, "explore-traces"),
        }, GpuRaces.Find(name)!.Body);

        TestContext.Out.WriteLine($"{name}: {report.Summary}, {report.SchedulesPerSecond:F0} schedules/s, {report.Steps} steps");
        Assert.That(report.Failures, Is.Zero, report.ToString());
        Assert.That(report.Schedules, Is.EqualTo(1000));
    }

    [TestCaseSource(nameof(Names))]
    public void Explores_under_pct_too(string name)
    {
        ExploreReport report = Explorer.Run(new ExploreOptions { Schedules = 200, Seed = 7, Strategy = ExploreStrategy.Pct, Inject = ExploreOptions.AllFaults },
            GpuRaces.Find(name)!.Body);

        TestContext.Out.WriteLine($"{name} (pct): {report}");
        Assert.That(report.Failures, Is.Zero, report.ToString());
    }

    [Test]
    public void The_catalogue_hmmsim_lists_holds_the_gpu_and_coherent_scenarios()
    {
        var names = DmirrorRaces.All.Select(s => s.Name).ToList();
        Assert.That(names, Is.SupersetOf(GpuRaces.All.Select(s => s.Name)));
        Assert.That(names, Does.Contain("coherent-migrate-cpu-fault").And.Contain("coherent-removal-migration"));
        Assert.That(names, Is.Unique);
        Assert.That(DmirrorRaces.Find("gpu-bind-cpu-touch")!.Description, Does.Contain("bind"));
        Assert.That(GpuRaces.Find("no-such-race"), Is.Null);
    }

    [Test]
    public void A_gpu_driver_programming_its_table_outside_the_notifier_sequence_is_found_and_replayed()
        => PlantedBugTests.FindAndReplay(
            new ExploreOptions { Schedules = 10_000, Seed = 1, Strategy = ExploreStrategy.Pct, PctHorizon = 120, KeepLastTrace = true },
            ctx => GpuRaces.FaultBatchVsMunmap(ctx, PrematureMapGpu.Create),
            "stale device mapping");

    [Test]
    public void The_same_scenario_with_nouveaus_generated_fault_path_is_not_reported()
    {
        ExploreReport report = Explorer.Run(new ExploreOptions { Schedules = 500, Seed = 1, Strategy = ExploreStrategy.Pct, PctHorizon = 120 },
            ctx => GpuRaces.FaultBatchVsMunmap(ctx));

        Assert.That(report.Failures, Is.Zero, report.ToString());
    }
}
