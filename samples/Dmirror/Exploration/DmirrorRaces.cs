using System.Buffers.Binary;
using Hmm.Runtime;
using Hmm.Runtime.Scheduling;
using Hmm.Samples.Mlx5.Exploration;
using Hmm.Samples.Nouveau.Exploration;

namespace Hmm.Samples.TestHmm.Exploration;

/// <summary>
/// The exploration catalogue: the dmirror race scenarios (the interleavings lib/test_hmm's
/// self-tests only reach by luck) on device-private (minor 0) and coherent (minor 2) memory, then
/// the GPU sample's (<see cref="GpuRaces"/>) and the ODP NIC sample's (<see cref="NicRaces"/>), each
/// small enough to explore thousands of schedules in seconds. The dmirror and GPU scenarios honour
/// the scenario-level faults: an OOM reaper (non-blockable invalidations) and, for dmirror, device
/// memory removal; the NIC scenarios take the runtime's in-line faults.
/// </summary>
public static class DmirrorRaces
{
    private const int Bytes = ScenarioWorld.Pages * 4096;

    /// <summary>Every scenario, in the order <c>hmmsim explore --list</c> prints them.</summary>
    public static IReadOnlyList<RaceScenario> All { get; } =
    [
        new("dmirror-munmap-read", "munmap of the buffer races a device read (HMM_DMIRROR_READ) and a CPU store", MunmapVsRead),
        new("migrate-cpu-fault", "migration to device memory races CPU loads and stores on the same pages", ctx => MigrateVsCpuFault(ctx)),
        new("fork-migration", "fork (COW write-protect) races migration of the parent's pages", ForkVsMigration),
        new("invalidate-fault-service", "a GPU-style fault-buffer service races munmap and madvise invalidations", FaultServiceRaces.InvalidateVsService),
        new("device-removal-migration", "device memory removal (RELEASE) races migration to the device and a CPU read", ctx => RemovalVsMigration(ctx)),
        new("exclusive-cpu-write", "make_device_exclusive races a CPU write to the same page", ctx => ExclusiveVsCpuWrite(ctx)),
        new("coherent-migrate-cpu-fault", "migration to coherent device memory (dmirror2) races CPU loads and stores on the same pages", ctx => MigrateVsCpuFault(ctx, minor: 2)),
        new("coherent-removal-migration", "coherent device memory removal races migration to it and a CPU read", ctx => RemovalVsMigration(ctx, minor: 2)),
        new("fork-eviction", "fork (copy_page_range) races the eviction of the parent's device-private pages and a parent store", ctx => EvictionRaces.ForkVsEviction(ctx)),
        new("coherent-fork-eviction", "fork races the eviction of the parent's coherent device pages and a parent store", ctx => EvictionRaces.ForkVsEviction(ctx, minor: 2)),
        new("mremap-eviction", "mremap moving device-private pages races their eviction and a CPU store", ctx => EvictionRaces.MremapVsEviction(ctx)),
        new("coherent-mremap-eviction", "mremap moving coherent device pages races their eviction and a CPU store", ctx => EvictionRaces.MremapVsEviction(ctx, minor: 2)),
        .. GpuRaces.All.Select(g => new RaceScenario(g.Name, g.Description, g.Body)),
        .. NicRaces.All.Select(n => new RaceScenario(n.Name, n.Description, n.Body)),
    ];

    /// <summary>The scenario named <paramref name="name"/>, or null.</summary>
    public static RaceScenario? Find(string name) => All.FirstOrDefault(s => s.Name == name);

    private static void MunmapVsRead(ExploreContext ctx)
    {
        var w = new ScenarioWorld(ctx);
        bool oom = SpawnScenarioFaults(ctx, w);
        ctx.Spawn("device", () =>
        {
            var bytes = new byte[Bytes];
            Errno e = w.Mirror.Read(w.Buffer, ScenarioWorld.Pages, bytes, out _);
            if (e == Errno.Ok)
            {
                CheckMirror(w, bytes, "device read");
            }
        });
        ctx.Spawn("munmap", () => Tolerate(oom, () => w.Process.Munmap(w.Buffer, Bytes)));
        ctx.Spawn("cpu", () => Tolerate(true, () => w.Process.Store(w.Address(1), w.Model[1])));
        w.CheckAtEnd(ctx, checkContents: false);
        _ = oom;
    }

    private static void MigrateVsCpuFault(ExploreContext ctx, int minor = 0)
    {
        var w = new ScenarioWorld(ctx, minor);
        bool oom = SpawnScenarioFaults(ctx, w);
        ctx.Spawn("migrate", () => Migrate(w));
        ctx.Spawn("cpu", () => Tolerate(oom, () =>
        {
            int v = w.Process.Load<int>(w.Address(0));
            ExploreContext.Check(oom || v == w.Model[0], $"CPU load of page 0 read {v}, expected {w.Model[0]}");
            w.Process.Store(w.Address(1), 201);
            w.Model[1] = 201;
            v = w.Process.Load<int>(w.Address(1));
            ExploreContext.Check(oom || v == 201, $"CPU load of page 1 read {v} right after storing 201");
        }));
        w.CheckAtEnd(ctx, checkContents: !oom);
    }

    private static void ForkVsMigration(ExploreContext ctx)
    {
        var w = new ScenarioWorld(ctx);
        bool oom = SpawnScenarioFaults(ctx, w);
        ctx.Spawn("migrate", () => Migrate(w));
        ctx.Spawn("fork", () => Tolerate(oom, () =>
        {
            Hmm.Runtime.Mm.Process child = w.Process.Fork("child");
            try
            {
                int v = child.Load<int>(w.Address(0));
                ExploreContext.Check(oom || v == w.Model[0], $"the child read {v} from page 0, expected {w.Model[0]}");
                child.Store(w.Address(2), 777);   // a COW break: the parent must keep its value
            }
            finally
            {
                child.Exit();
            }
        }));
        w.CheckAtEnd(ctx, checkContents: !oom);
    }

    private static void RemovalVsMigration(ExploreContext ctx, int minor = 0)
    {
        var w = new ScenarioWorld(ctx, minor);
        bool oom = SpawnScenarioFaults(ctx, w, removal: false);
        ctx.Spawn("migrate", () => Migrate(w));
        ctx.Spawn("remove", () => w.Mirror.Release());
        ctx.Spawn("cpu", () => Tolerate(oom, () =>
        {
            int v = w.Process.Load<int>(w.Address(3));
            ExploreContext.Check(oom || v == w.Model[3], $"CPU load of page 3 read {v}, expected {w.Model[3]}");
        }));
        w.CheckAtEnd(ctx, checkContents: !oom);
    }

    private static void ExclusiveVsCpuWrite(ExploreContext ctx)
    {
        var w = new ScenarioWorld(ctx);
        bool oom = SpawnScenarioFaults(ctx, w);
        ctx.Spawn("exclusive", () =>
        {
            var bytes = new byte[2 * 4096];
            _ = w.Mirror.Exclusive(w.Buffer, 2, bytes, out _);
        });
        ctx.Spawn("cpu", () => Tolerate(oom, () =>
        {
            w.Process.Store(w.Address(0), 300);
            w.Model[0] = 300;
            int v = w.Process.Load<int>(w.Address(0));
            ExploreContext.Check(oom || v == 300, $"CPU read {v} right after storing 300 to an exclusive page");
        }));
        w.CheckAtEnd(ctx, checkContents: !oom);
    }

    /// <summary>HMM_DMIRROR_MIGRATE_TO_DEV of the whole buffer; what it read back must be the model.</summary>
    private static void Migrate(ScenarioWorld w)
    {
        var bytes = new byte[Bytes];
        Errno e = w.Mirror.MigrateToDevice(w.Buffer, ScenarioWorld.Pages, bytes, out _);
        if (e == Errno.Ok)
        {
            CheckMirror(w, bytes, "migrate read-back", skipPage: 1);
        }
    }

    private static void CheckMirror(ScenarioWorld w, byte[] bytes, string what, int skipPage = -1)
    {
        if (w.Oom)
        {
            return;   // the reaper zapped the pages: the device legitimately reads zeroes
        }

        for (int i = 0; i < ScenarioWorld.Pages; i++)
        {
            if (i == skipPage)
            {
                continue;   // a concurrent CPU store may land before or after the read
            }

            int v = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(i * 4096));
            ExploreContext.Check(v == w.Model[i], $"{what}: page {i} holds {v}, the last write was {w.Model[i]}");
        }
    }

    /// <summary>Spawns the scenario-level faults this schedule injects; true when an OOM reaper runs (contents are then gone).</summary>
    internal static bool SpawnScenarioFaults(ExploreContext ctx, ScenarioWorld w, bool removal = true)
    {
        bool oom = ctx.Injects(FaultSite.NonBlockableInvalidate);
        w.Oom = oom;
        if (oom)
        {
            ctx.Spawn("oom-reaper", () => w.Process.OomKill());
        }

        if (removal && ctx.Injects(FaultSite.DeviceRemoval))
        {
            ctx.Spawn("remove", () => w.Mirror.Release());
        }

        return oom;
    }

    /// <summary>Runs <paramref name="body"/>, absorbing what a racing thread may legitimately see: ENOMEM, and SIGSEGV/SIGBUS/OOM when <paramref name="allowed"/>.</summary>
    internal static void Tolerate(bool allowed, Action body)
    {
        try
        {
            body();
        }
        catch (ErrnoException e) when (e.Errno == Errno.ENOMEM)
        {
            // An injected allocation failure: the fault returned VM_FAULT_OOM (the task would be killed).
        }
        catch (Exception e) when (allowed && (ScenarioWorld.IsExpectedCpuFailure(e) || e is InvalidOperationException { Message: var m } && m.Contains("OOM", StringComparison.Ordinal)))
        {
            // The OOM reaper took the memory (or munmap the area): the kernel would SIGSEGV/SIGBUS.
        }
    }
}
