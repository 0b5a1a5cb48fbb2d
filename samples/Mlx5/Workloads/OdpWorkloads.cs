using Hmm.Runtime;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.Mlx5;

/// <summary>
/// The mlx5-like ODP demos of drivers.md F.2, one public entry each (hmmsim wraps them): every one
/// builds a <see cref="Mlx5Testbed"/>, runs its scenario, checks every byte it reads against a
/// reference, tears down with the machine's invariants checked, and returns the counters.
/// </summary>
public static partial class OdpWorkloads
{
    /// <summary>
    /// F.2.1 — explicit ODP MR, remote RDMA WRITE: the server registers 4×<paramref name="pages"/>
    /// pages without pinning; the client writes <paramref name="pages"/> pages into it. Shows the RDMA
    /// responder faults (one packet, then the 4 MiB post-resume prefetch window), per-fault page
    /// counts and the B.10 counters of the target MR.
    /// </summary>
    public static Mlx5WorkloadResult RdmaWrite(int pages, int seed) => RdmaWrite(pages, seed, memoryScheme: false);

    /// <summary>
    /// F.2.1 on a "memory scheme" NIC (B.4): the responder's stall raises one memory fault carrying the
    /// demand and a 4 MiB prefetch-after, serviced as one range — one fault handled instead of two.
    /// </summary>
    public static Mlx5WorkloadResult RdmaWriteMemoryScheme(int pages, int seed) => RdmaWrite(pages, seed, memoryScheme: true);

    private static Mlx5WorkloadResult RdmaWrite(int pages, int seed, bool memoryScheme)
    {
        pages = Math.Max(pages, 1);
        using var tb = new Mlx5Testbed(new Mlx5TestbedOptions { Nic = new Mlx5Options { InlineFaults = true, MemoryScheme = memoryScheme } });
        long mrPages = 4L * pages;
        ulong target = Mlx5Testbed.Map(tb.Server, mrPages);
        var mrB = tb.Register(tb.NicB, tb.PdB, target, mrPages);
        long bytes = (long)pages * Page.Size;
        var data = Mlx5Testbed.Pattern(bytes, seed);
        ulong src = Mlx5Testbed.Map(tb.Client, pages);
        tb.Client.Write(src, data);
        var mrA = tb.Register(tb.NicA, tb.PdA, src, pages);
        var e = tb.QpA.RdmaWrite(new Sge(src, (uint)bytes, mrA.Key), target, mrB.Key);
        bool ok = e == Errno.Ok && Mlx5Testbed.Matches(tb.Server, target, data);
        var counters = Merge(mrB.Snapshot());
        counters["requester_page_faults"] = mrA.Counters.PageFaults;
        counters["qp_stalls"] = tb.QpA.Stalls;
        counters["mr_pages"] = mrPages;
        counters["bytes_written"] = bytes;
        return Finish(tb, memoryScheme ? "odp-rdma-write-memory-scheme" : "odp-rdma-write", counters, ok);
    }

    /// <summary>
    /// F.2.2 — implicit ODP: the server registers its whole address space; the client writes
    /// <paramref name="pages"/> pages into buffers in three different 1 GiB slots. Each slot's first
    /// fault hits the null mkey and creates a child (lazily, KSM entry rewritten); then one buffer is
    /// unmapped, its child is emptied by the invalidation and reaped.
    /// </summary>
    public static Mlx5WorkloadResult ImplicitOdp(int pages, int seed)
    {
        pages = Math.Max(pages, 1);
        using var tb = new Mlx5Testbed();
        var mrB = tb.RegisterImplicit(tb.NicB, tb.PdB);
        long bytes = (long)pages * Page.Size;
        ulong src = Mlx5Testbed.Map(tb.Client, pages);
        var mrA = tb.Register(tb.NicA, tb.PdA, src, pages);
        // Each slot maps the prefetch window too, so the post-resume prefetch finds memory there.
        long slotPages = pages + (long)(tb.NicB.Options.PrefetchWindowBytes >> Page.Shift);
        const ulong Base = 0x100_0000_0000; // 1 TiB: three fresh 1 GiB slots
        bool ok = true;
        var targets = new ulong[3];
        for (int k = 0; k < 3; k++)
        {
            targets[k] = Mlx5Testbed.Map(tb.Server, slotPages, Base + ((ulong)k << Mlx5.ImplicitOdp.ChildShift) + (ulong)k * Page.PmdSize);
            var data = Mlx5Testbed.Pattern(bytes, seed + k);
            tb.Client.Write(src, data);
            ok &= tb.QpA.RdmaWrite(new Sge(src, (uint)bytes, mrA.Key), targets[k], mrB.Key) == Errno.Ok;
            ok &= Mlx5Testbed.Matches(tb.Server, targets[k], data);
        }
        var implicitMr = mrB.Implicit!;
        long childrenAfterWrites = implicitMr.ChildCount;
        tb.Server.Munmap(targets[1], (ulong)slotPages * Page.Size);
        tb.NicB.FlushWork();
        var counters = Merge(mrB.Snapshot());
        counters["children_after_writes"] = childrenAfterWrites;
        counters["children_after_munmap"] = implicitMr.ChildCount;
        counters["ksm_updates"] = implicitMr.KsmUpdates;
        counters["ksm_entries"] = Mlx5.ImplicitOdp.KsmEntries;
        return Finish(tb, "odp-implicit", counters, ok);
    }

    /// <summary>
    /// F.2.3 — invalidation while the region is in use: after a first transfer the server
    /// <c>madvise(DONTNEED)</c>s two single pages, then a 16-page range (one 8-aligned zap covering
    /// entries already empty), and unmaps the last 8 pages. The zapped pages were written by the NIC and
    /// are marked dirty; the next transfer re-faults them; a write into the unmapped tail fails.
    /// </summary>
    public static Mlx5WorkloadResult Invalidation(int pages, int seed)
    {
        pages = Math.Max(pages, 32);
        using var tb = new Mlx5Testbed();
        long bytes = (long)pages * Page.Size;
        ulong target = Mlx5Testbed.Map(tb.Server, pages);
        var mrB = tb.Register(tb.NicB, tb.PdB, target, pages);
        ulong src = Mlx5Testbed.Map(tb.Client, pages);
        var mrA = tb.Register(tb.NicA, tb.PdA, src, pages);
        var first = Mlx5Testbed.Pattern(bytes, seed);
        tb.Client.Write(src, first);
        bool ok = tb.QpA.RdmaWrite(new Sge(src, (uint)bytes, mrA.Key), target, mrB.Key) == Errno.Ok && Mlx5Testbed.Matches(tb.Server, target, first);
        long faultsBefore = mrB.Counters.PageFaults;

        tb.Server.Madvise(target + 3 * Page.Size, Page.Size, Advice.DontNeed);
        tb.Server.Madvise(target + 5 * Page.Size, Page.Size, Advice.DontNeed);
        tb.Server.Madvise(target, 16 * Page.Size, Advice.DontNeed);
        tb.Server.Munmap(target + (ulong)(pages - 8) * Page.Size, 8 * Page.Size);

        long liveBytes = bytes - 8 * Page.Size;
        var second = Mlx5Testbed.Pattern(liveBytes, seed + 1);
        tb.Client.Write(src, second);
        ok &= tb.QpA.RdmaWrite(new Sge(src, (uint)liveBytes, mrA.Key), target, mrB.Key) == Errno.Ok;
        ok &= Mlx5Testbed.Matches(tb.Server, target, second);
        var tail = tb.QpA.RdmaWrite(new Sge(src, 8 * Page.Size, mrA.Key), target + (ulong)liveBytes, mrB.Key);
        var counters = Merge(mrB.Snapshot());
        counters["page_faults_after_invalidation"] = mrB.Counters.PageFaults - faultsBefore;
        counters["write_into_unmapped_errno"] = (long)tail;
        return Finish(tb, "odp-invalidation", counters, ok && tail == Errno.EFAULT);
    }

    /// <summary>
    /// F.2.4 — prefetch advice on three untouched regions of <paramref name="pages"/> pages:
    /// PREFETCH (synchronous, FLUSH) maps read-only so the following RDMA WRITE faults again
    /// (downgrade); PREFETCH_WRITE (asynchronous) maps writable so it does not; NO_FAULT (synchronous)
    /// maps only the half the CPU touched. Counters per region are prefixed prefetch., prefetch_write.,
    /// no_fault.; *.first_transfer_ns is the simulated time of the first transfer after the advice.
    /// </summary>
    public static Mlx5WorkloadResult Prefetch(int pages, int seed)
    {
        pages = Math.Max(pages, 2);
        using var tb = new Mlx5Testbed();
        long bytes = (long)pages * Page.Size;
        ulong src = Mlx5Testbed.Map(tb.Client, pages);
        var mrA = tb.Register(tb.NicA, tb.PdA, src, pages);
        var counters = new Dictionary<string, long>();
        bool ok = true;
        (string Name, AdviseKind Advice, bool Flush)[] runs =
        [
            ("prefetch", AdviseKind.Prefetch, true),
            ("prefetch_write", AdviseKind.PrefetchWrite, false),
            ("no_fault", AdviseKind.PrefetchNoFault, true),
        ];
        for (int k = 0; k < runs.Length; k++)
        {
            var (name, advice, flush) = runs[k];
            ulong target = Mlx5Testbed.Map(tb.Server, pages);
            if (advice == AdviseKind.PrefetchNoFault)
                for (int p = 0; p < pages / 2; p++) tb.Server.Store(target + (ulong)p * Page.Size, 0UL);
            var mrB = tb.Register(tb.NicB, tb.PdB, target, pages);
            Sge[] sges = [new Sge(target, (uint)bytes, mrB.Key)];
            ok &= tb.NicB.AdviseMr(tb.PdB, advice, flush, sges) == Errno.Ok;
            if (!flush) tb.NicB.FlushWork();
            long faultsBefore = mrB.Counters.PageFaults;
            var data = Mlx5Testbed.Pattern(bytes, seed + k);
            tb.Client.Write(src, data);
            long t0 = tb.SimulatedTimeNs;
            ok &= tb.QpA.RdmaWrite(new Sge(src, (uint)bytes, mrA.Key), target, mrB.Key) == Errno.Ok;
            counters[name + ".first_transfer_ns"] = tb.SimulatedTimeNs - t0;
            ok &= Mlx5Testbed.Matches(tb.Server, target, data);
            foreach (var (key, value) in mrB.Snapshot()) counters[name + "." + key] = value;
            counters[name + ".write_faults_after_advice"] = mrB.Counters.PageFaults - faultsBefore;
        }
        return Finish(tb, "odp-prefetch", counters, ok);
    }

    internal static Dictionary<string, long> Merge(IReadOnlyDictionary<string, long> counters) => new(counters);

    internal static Mlx5WorkloadResult Finish(Mlx5Testbed tb, string name, Dictionary<string, long> counters, bool ok,
        long p2pBytes = 0, long fallbackBytes = 0, long migrations = 0)
    {
        long time = tb.SimulatedTimeNs;
        counters["nic_a_simulated_ns"] = tb.NicA.Device.Clock.Now;
        counters["nic_b_simulated_ns"] = tb.NicB.Device.Clock.Now;
        tb.Finish();
        return new Mlx5WorkloadResult(name, counters, time, ok, p2pBytes, fallbackBytes, migrations);
    }
}
