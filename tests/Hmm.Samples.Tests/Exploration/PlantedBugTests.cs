using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Scheduling;
using Hmm.Samples.TestHmm.Exploration;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Exploration;

/// <summary>
/// Acceptance 2 and 3: drivers with one planted race or lock bug each are caught within 10,000
/// schedules, and the printed seed replays the same failure with a byte-identical trace.
/// </summary>
[NonParallelizable]
public sealed class PlantedBugTests
{
    private static ExploreOptions Options(ExploreStrategy strategy = ExploreStrategy.Random, params FaultSite[] inject) => new()
    {
        Schedules = 10_000,
        Seed = 1,
        Strategy = strategy,
        Inject = inject,
        InjectProbability = 0.2,
        KeepLastTrace = true,
    };

    [Test]
    public void Device_table_programmed_without_the_retry_check_is_found()
        => FindAndReplay(Options(ExploreStrategy.Pct) with { PctHorizon = 80 }, ctx => FaultServiceRaces.Run(ctx, (d, p) => new NoRetryMirror(d, p)), "stale device mapping");

    [Test]
    public void Update_lock_released_too_early_is_found()
        => FindAndReplay(Options(ExploreStrategy.Pct) with { PctHorizon = 80 }, ctx => FaultServiceRaces.Run(ctx, (d, p) => new EarlyUnlockMirror(d, p)), "stale device mapping");

    [Test]
    public void Callback_reading_a_half_initialised_field_is_found()
        => FindAndReplay(Options(), ctx =>
        {
            var machine = new Machine(new MachineOptions { SystemMemory = 8L << 20 });
            ctx.Cleanup(machine.Dispose);
            Process p = machine.CreateProcess("app");
            ulong buf = p.Mmap(4096, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
            p.Store(buf, 1);
            HalfBuiltDriver? driver = null;
            ctx.Spawn("probe", () => driver = new HalfBuiltDriver(p));
            ctx.Spawn("munmap", () => p.Munmap(buf, 4096));
            ctx.AtEnd(() => { driver?.Remove(); p.Exit(); machine.CheckInvariants(); });
        }, "NullReferenceException");

    [Test]
    public void Missing_finalize_on_an_injected_copy_error_is_found()
        => FindAndReplay(Options(ExploreStrategy.Random, FaultSite.CopyError), ctx =>
        {
            var machine = new Machine(new MachineOptions { SystemMemory = 8L << 20 });
            ctx.Cleanup(machine.Dispose);
            var copy = new CopyEngine(machine);
            Process p = machine.CreateProcess("app");
            ulong buf = p.Mmap(4096, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
            p.Store(buf, 7);
            var driver = new MissingFinalizeDriver(copy);
            ctx.Spawn("migrate", () => driver.MigrateOne(p, buf));
            ctx.Spawn("cpu", () => ExploreContext.Check(p.Load<int>(buf) == 7, "CPU lost the page's contents"));
            ctx.AtEnd(() => { p.Exit(); machine.CheckInvariants(); });
        }, "MIG-R02");

    [Test]
    public void Migrate_to_ram_without_the_faulting_page_reference_is_found()
        => FindAndReplay(Options(), ctx => DevmemRace(ctx, passFaultPage: false), "MIG-R08");

    [Test]
    public void Migrate_to_ram_with_the_faulting_page_is_not_reported()
    {
        ExploreReport report = Explorer.Run(Options() with { Schedules = 300 }, ctx => DevmemRace(ctx, passFaultPage: true));

        Assert.That(report.Failures, Is.Zero, report.ToString());
    }

    [Test]
    public void Ab_ba_deadlock_is_reported_with_held_locks_and_wait_sites_when_lockdep_is_off()
    {
        bool validating = LockValidator.Enabled;
        LockValidator.Enabled = false;
        try
        {
            ExploreReport report = Explorer.Run(Options(), ctx =>
            {
                var a = new KernelMutex("planted2.a");
                var b = new KernelMutex("planted2.b");
                ctx.Spawn("ab", () => { a.Lock(); b.Lock(); b.Unlock(); a.Unlock(); });
                ctx.Spawn("ba", () => { b.Lock(); a.Lock(); a.Unlock(); b.Unlock(); });
            });

            Assert.That(report.FirstFailure?.Kind, Is.EqualTo(ExploreFailureKind.Deadlock), report.ToString());
            Assert.That(report.FirstFailure!.Message, Does.Contain("ab: waits for mutex 'planted2.b'").And.Contain("holds mutex 'planted2.a'"));
            Assert.That(report.FirstFailure.Message, Does.Contain("ba: waits for mutex 'planted2.a'").And.Contain("PlantedBugTests"));
        }
        finally
        {
            LockValidator.Enabled = validating;
        }
    }

    [Test]
    public void Ab_ba_lock_order_is_found()
        => FindAndReplay(Options(ExploreStrategy.Pct), ctx =>
        {
            var a = new KernelMutex("planted.a");
            var b = new KernelMutex("planted.b");
            ctx.Spawn("ab", () => { a.Lock(); b.Lock(); b.Unlock(); a.Unlock(); });
            ctx.Spawn("ba", () => { b.Lock(); a.Lock(); a.Unlock(); b.Unlock(); });
        }, "planted.");

    [Test]
    public void A_correct_driver_in_the_same_scenario_is_not_reported()
    {
        ExploreReport report = Explorer.Run(Options() with { Schedules = 300 }, FaultServiceRaces.InvalidateVsService);

        Assert.That(report.Failures, Is.Zero, report.ToString());
    }

    [Test]
    public void The_same_seed_gives_a_byte_identical_trace()
    {
        var options = new ExploreOptions { Schedules = 1, Seed = 4242, Inject = ExploreOptions.AllFaults, KeepLastTrace = true };

        string first = Explorer.Run(options, DmirrorRaces.Find("migrate-cpu-fault")!.Body).LastTrace!;
        string second = Explorer.Run(options, DmirrorRaces.Find("migrate-cpu-fault")!.Body).LastTrace!;
        string other = Explorer.Run(options with { Seed = 4243 }, DmirrorRaces.Find("migrate-cpu-fault")!.Body).LastTrace!;

        Assert.That(second, Is.EqualTo(first));
        Assert.That(other, Is.Not.EqualTo(first), "a different seed should give a different interleaving");
        Assert.That(first, Does.Contain("acquire").And.Contain("migrate"));
    }

    /// <summary>Two CPU threads touch a page that lives in device-private memory: both fault into migrate_to_ram.</summary>
    private static void DevmemRace(ExploreContext ctx, bool passFaultPage)
    {
        var machine = new Machine(new MachineOptions { SystemMemory = 8L << 20, TransparentHugePages = false });
        ctx.Cleanup(machine.Dispose);
        Process p = machine.CreateProcess("app");
        ulong buf = p.Mmap(4096, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        p.Store(buf, 41);
        var driver = new TinyDevmemDriver(machine, passFaultPage);
        ExploreContext.Check(driver.MigrateToDevice(p, buf) == Errno.Ok, "setup: migration to the device failed");
        ctx.Spawn("cpu0", () => ExploreContext.Check(p.Load<int>(buf) == 41, "cpu0 lost the page's contents"));
        ctx.Spawn("cpu1", () => ExploreContext.Check(p.Load<int>(buf) == 41, "cpu1 lost the page's contents"));
        ctx.AtEnd(() => { machine.CheckInvariants(); p.Exit(); machine.CheckInvariants(); });
    }

    internal static void FindAndReplay(ExploreOptions options, Action<ExploreContext> body, string expected)
    {
        ExploreReport found = Explorer.Run(options, body);
        TestContext.Out.WriteLine(found.ToString());

        Assert.That(found.FirstFailure, Is.Not.Null, "the planted bug was not found in " + options.Schedules + " schedules");
        ExploreFailure failure = found.FirstFailure!;
        Assert.That(failure.Message, Does.Contain(expected));
        Assert.That(found.Summary, Does.Contain("--seed " + failure.Seed));

        ExploreReport replay = Explorer.Replay(options, failure, body);

        Assert.That(replay.FirstFailure, Is.Not.Null, "the printed seed did not replay the failure");
        Assert.That(replay.FirstFailure!.Message, Is.EqualTo(failure.Message).Or.Contain(expected));
        Assert.That(replay.FirstFailure.Trace, Is.EqualTo(failure.Trace), "the replayed trace differs");
    }
}
