using Hmm.Runtime.Scheduling;
using Hmm.Samples.Mlx5;
using Hmm.Samples.Mlx5.Exploration;
using Hmm.Samples.TestHmm.Exploration;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Exploration;

/// <summary>
/// The NIC (mlx5 ODP) race scenarios: explored under random schedules with every fault site
/// injected and under PCT, listed in the catalogue, and a planted NIC bug (an invalidation that
/// leaves the last partial run of 8 MTT entries valid) found and replayed by its seed.
/// </summary>
[NonParallelizable]
public sealed class NicRaceTests
{
    private static IEnumerable<string> Names() => NicRaces.All.Select(s => s.Name);

    [TestCaseSource(nameof(Names))]
    public void Explores_random_schedules_with_faults_injected_and_finds_nothing(string name)
    {
        ExploreReport report = Explorer.Run(new ExploreOptions
        {
            Schedules = 300,
            Seed = 14_000,
            Strategy = ExploreStrategy.Random,
            Inject = ExploreOptions.AllFaults,
            TraceDirectory = Path.Combine(TestContext.CurrentContext.WorkDirectory, "explore-traces"),
        }, NicRaces.Find(name)!.Body);

        TestContext.Out.WriteLine($"{name}: {report.Summary}, {report.SchedulesPerSecond:F0} schedules/s, {report.Steps} steps");
        Assert.That(report.Failures, Is.Zero, report.ToString());
        Assert.That(report.Schedules, Is.EqualTo(300));
    }

    [TestCaseSource(nameof(Names))]
    public void Explores_under_pct_too(string name)
    {
        ExploreReport report = Explorer.Run(new ExploreOptions { Schedules = 200, Seed = 7, Strategy = ExploreStrategy.Pct, PctHorizon = 120, Inject = ExploreOptions.AllFaults },
            NicRaces.Find(name)!.Body);

        TestContext.Out.WriteLine($"{name} (pct): {report}");
        Assert.That(report.Failures, Is.Zero, report.ToString());
    }

    [Test]
    public void The_implicit_scenario_reaches_both_the_reaped_and_the_kept_child()
    {
        int kept = 0, reapedThenRecreated = 0;
        ExploreReport report = Explorer.Run(new ExploreOptions { Schedules = 200, Seed = 7, Strategy = ExploreStrategy.Pct, PctHorizon = 120 },
            ctx => NicRaces.ImplicitReapVsFault(ctx, observe: mr =>
            {
                var c = mr.Counters.Snapshot();
                if (c["implicit_children_reaped"] == 0) kept++;
                else if (c["implicit_children_created"] == 2) reapedThenRecreated++;
            }));

        TestContext.Out.WriteLine($"{report.Summary}: kept {kept}, reaped then re-created {reapedThenRecreated}");
        Assert.That(report.Failures, Is.Zero, report.ToString());
        Assert.That(kept, Is.GreaterThan(0), "no schedule let the new fault keep the emptied child");
        Assert.That(reapedThenRecreated, Is.GreaterThan(0), "no schedule reaped the child before the new fault");
    }

    [Test]
    public void The_catalogue_hmmsim_lists_holds_the_nic_scenarios()
    {
        var names = DmirrorRaces.All.Select(s => s.Name).ToList();
        Assert.That(names, Is.SupersetOf(NicRaces.All.Select(s => s.Name)));
        Assert.That(names, Is.Unique);
        Assert.That(DmirrorRaces.Find("nic-dereg-fault")!.Description, Does.Contain("deregistration"));
        Assert.That(NicRaces.Find("no-such-race"), Is.Null);
    }

    [Test]
    public void A_nic_zap_leaving_the_last_partial_run_of_8_entries_is_found_and_replayed()
        => PlantedBugTests.FindAndReplay(
            new ExploreOptions { Schedules = 2_000, Seed = 1, Strategy = ExploreStrategy.Pct, PctHorizon = 120, KeepLastTrace = true },
            ctx => NicRaces.FaultVsMunmap(ctx, new Mlx5Options { PlantedZapSkipsPartialTail = true }),
            "stale NIC translations");

    [Test]
    public void The_planted_nic_bug_shows_only_in_some_interleavings()
    {
        // munmap before the NIC faulted the upper half leaves nothing to zap: the bug needs the fault
        // first. A random walk almost never lets the ~20-step fault finish before munmap's one step
        // takes mmap_lock; PCT's priorities do in about half the schedules.
        ExploreReport report = Explorer.Run(new ExploreOptions { Schedules = 200, Seed = 1, Strategy = ExploreStrategy.Pct, PctHorizon = 120, StopOnFirstFailure = false },
            ctx => NicRaces.FaultVsMunmap(ctx, new Mlx5Options { PlantedZapSkipsPartialTail = true }));

        TestContext.Out.WriteLine(report.Summary);
        Assert.That(report.Failures, Is.GreaterThan(0).And.LessThan(200), report.Summary);
    }

    [Test]
    public void The_same_scenario_with_the_real_zap_is_not_reported()
    {
        ExploreReport report = Explorer.Run(new ExploreOptions { Schedules = 300, Seed = 1, Strategy = ExploreStrategy.Pct, PctHorizon = 120 },
            ctx => NicRaces.FaultVsMunmap(ctx, new Mlx5Options()));

        Assert.That(report.Failures, Is.Zero, report.ToString());
    }

    [Test]
    public void Workers_zero_needs_inline_faults_and_runs_queued_work_on_the_caller()
    {
        Assert.Throws<ArgumentException>(() => new Mlx5Testbed(new Mlx5TestbedOptions { Nic = new Mlx5Options { Workers = 0 } }));
        using var tb = new Mlx5Testbed(new Mlx5TestbedOptions { Nic = new Mlx5Options { Workers = 0, InlineFaults = true } });
        Assert.That(tb.NicB.RunQueuedWork(), Is.Zero);
        tb.Finish();
    }
}
