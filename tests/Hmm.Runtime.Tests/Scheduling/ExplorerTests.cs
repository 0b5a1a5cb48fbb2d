using Hmm.Runtime.Locking;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Scheduling;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Scheduling;

/// <summary>The controlled scheduler itself: strategies, bounds, failures, hooks off outside a run.</summary>
[NonParallelizable]
public sealed class ExplorerTests
{
    [Test]
    public void Dfs_enumerates_every_interleaving_of_a_small_case_and_stops_when_exhausted()
    {
        var orders = new HashSet<string>();
        ExploreReport report = Explorer.Run(new ExploreOptions { Strategy = ExploreStrategy.Dfs, Schedules = 1000 }, ctx =>
        {
            var log = new List<string>();
            ctx.Spawn("a", () => Steps(log, "a"));
            ctx.Spawn("b", () => Steps(log, "b"));
            ctx.AtEnd(() => orders.Add(string.Join(",", log)));
        });

        Assert.That(report.Failures, Is.Zero);
        Assert.That(report.Schedules, Is.LessThan(1000), "the DFS should exhaust the space");
        Assert.That(orders, Has.Count.EqualTo(6), "C(4,2) orders of two threads with two steps each");
    }

    [Test]
    public void Random_walk_and_pct_reach_both_orders_of_a_race()
    {
        foreach (ExploreStrategy strategy in new[] { ExploreStrategy.Random, ExploreStrategy.Pct })
        {
            var firsts = new HashSet<string>();
            Explorer.Run(new ExploreOptions { Strategy = strategy, Schedules = 200, PctHorizon = 6 }, ctx =>
            {
                var log = new List<string>();
                ctx.Spawn("a", () => Steps(log, "a"));
                ctx.Spawn("b", () => Steps(log, "b"));
                ctx.AtEnd(() => firsts.Add(log[0]));
            });

            Assert.That(firsts, Is.EquivalentTo(new[] { "a1", "b1" }), strategy.ToString());
        }
    }

    [Test]
    public void A_throwing_thread_fails_the_schedule_with_a_replayable_seed()
    {
        var options = new ExploreOptions { Schedules = 500, Seed = 77, KeepLastTrace = true };
        Action<ExploreContext> body = ctx =>
        {
            int shared = 0;
            ctx.Spawn("writer", () => { SchedulePoints.Reach(SchedulePointKind.MaySleep, null); shared = 1; });
            ctx.Spawn("reader", () => ExploreContext.Check(shared == 0, "saw the write"));
        };

        ExploreReport report = Explorer.Run(options, body);

        Assert.That(report.FirstFailure, Is.Not.Null);
        Assert.That(report.FirstFailure!.Kind, Is.EqualTo(ExploreFailureKind.Exception));
        Assert.That(report.Summary, Does.Match(@"^\d+ schedules, 1 failures \(first: --strategy random --seed \d+\)$"));
        ExploreReport replay = Explorer.Replay(options, report.FirstFailure, body);
        Assert.That(replay.FirstFailure?.Trace, Is.EqualTo(report.FirstFailure.Trace));
        Assert.That(replay.Schedules, Is.EqualTo(1));
    }

    [Test]
    public void A_thread_that_never_stops_hits_the_step_bound()
    {
        ExploreReport report = Explorer.Run(new ExploreOptions { Schedules = 3, MaxSteps = 500 }, ctx =>
        {
            var flag = new KernelMutex("livelock.flag");
            ctx.Spawn("spinner", () => { while (true) { flag.Lock(); flag.Unlock(); } });
            ctx.Spawn("idle", () => { });
        });

        Assert.That(report.FirstFailure?.Kind, Is.EqualTo(ExploreFailureKind.StepBound));
        Assert.That(report.FirstFailure!.Trace, Does.Contain("mutex 'livelock.flag'"));
    }

    [Test]
    public void Injection_fires_only_for_enabled_sites_on_logical_threads()
    {
        bool copy = false, alloc = true;
        Explorer.Run(new ExploreOptions { Schedules = 1, Inject = [FaultSite.CopyError], InjectProbability = 1.0 }, ctx =>
            ctx.Spawn("t", () => { copy = FaultInjection.Fails(FaultSite.CopyError); alloc = FaultInjection.Fails(FaultSite.SystemPage); }));

        Assert.That(copy, Is.True);
        Assert.That(alloc, Is.False);
        Assert.That(FaultInjection.Fails(FaultSite.CopyError), Is.False, "outside an exploration nothing is injected");
    }

    [Test]
    public void Injected_allocation_failure_surfaces_as_enomem_from_a_cpu_fault()
    {
        Exception? seen = null;
        ExploreReport report = Explorer.Run(new ExploreOptions { Schedules = 1, Inject = [FaultSite.SystemPage], InjectProbability = 1.0 }, ctx =>
        {
            var machine = new Machine(new MachineOptions { SystemMemory = 8L << 20 });
            ctx.Cleanup(machine.Dispose);
            Process p = machine.CreateProcess("app");
            ulong buf = p.Mmap(4096, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
            ctx.Spawn("cpu", () => { try { p.Store(buf, 1); } catch (ErrnoException e) { seen = e; } });
            ctx.AtEnd(() => { p.Exit(); machine.CheckInvariants(); });
        });

        Assert.That(report.Failures, Is.Zero, report.ToString());
        Assert.That((seen as ErrnoException)?.Errno, Is.EqualTo(Errno.ENOMEM));
    }

    [Test]
    public void Hooks_are_off_outside_a_run_and_runs_do_not_nest()
    {
        Assert.That(SchedulePoints.Hook, Is.Null);
        Assert.That(FaultInjection.Hook, Is.Null);
        ExploreReport report = Explorer.Run(new ExploreOptions { Schedules = 1 }, ctx =>
            ctx.Spawn("nested", () => Explorer.Run(new ExploreOptions(), _ => { })));

        Assert.That(report.FirstFailure?.Message, Does.Contain("already running"));
        Assert.That(SchedulePoints.Hook, Is.Null);
        Assert.That(FaultInjection.Hook, Is.Null);
    }

    private static void Steps(List<string> log, string name)
    {
        SchedulePoints.Reach(SchedulePointKind.MaySleep, null);
        log.Add(name + "1");
        SchedulePoints.Reach(SchedulePointKind.MaySleep, null);
        log.Add(name + "2");
    }
}
