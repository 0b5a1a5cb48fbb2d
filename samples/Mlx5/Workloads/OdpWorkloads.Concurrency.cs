using Hmm.Runtime;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.Mlx5;

public static partial class OdpWorkloads
{
    /// <summary>
    /// F.2.5 — race stress on real threads: two writer threads (each its own QP pair, faults on the
    /// EQ workers) RDMA WRITE then RDMA READ back their half of the server's region for
    /// <paramref name="rounds"/> rounds, while a third thread forks the server over and over (each fork
    /// write-protects the region: an invalidation of every page, then a COW break on the NIC's next
    /// write fault). Every translation the DMA uses is checked against the CPU page table
    /// (stale_translations must stay 0); sequence retries and retry-resumes are counted; every byte read
    /// back must match.
    /// </summary>
    public static Mlx5WorkloadResult RaceStress(int pages, int seed, int rounds = 16)
    {
        pages = Math.Max(pages, 4) & ~1;
        var options = new Mlx5TestbedOptions { Nic = new Mlx5Options { InlineFaults = false, Workers = 2, CheckTranslations = true } };
        using var tb = new Mlx5Testbed(options);
        long half = (long)pages / 2 * Page.Size;
        ulong target = Mlx5Testbed.Map(tb.Server, pages);
        var mrB = tb.Register(tb.NicB, tb.PdB, target, pages);
        ulong src = Mlx5Testbed.Map(tb.Client, 2L * pages);
        var mrA = tb.Register(tb.NicA, tb.PdA, src, 2L * pages);
        int failures = 0, mismatches = 0;
        var lastData = new byte[2][];
        int writersLeft = 2;
        long forks = 0;
        var writers = new Thread[2];
        for (int w = 0; w < 2; w++)
        {
            int writer = w;
            var qpA = tb.NicA.CreateQp(tb.PdA);
            var qpB = tb.NicB.CreateQp(tb.PdB);
            LoopbackFabric.Connect(qpA, qpB);
            writers[w] = new Thread(() =>
            {
                ulong mine = target + (ulong)(writer * half);
                ulong from = src + (ulong)(writer * half);
                ulong back = src + (ulong)(pages * Page.Size) + (ulong)(writer * half);
                var readBack = new byte[half];
                try
                {
                    for (int r = 0; r < rounds; r++)
                    {
                        var data = Mlx5Testbed.Pattern(half, seed * 1000 + writer * 100 + r);
                        tb.Client.Write(from, data);
                        if (qpA.RdmaWrite(new Sge(from, (uint)half, mrA.Key), mine, mrB.Key) != Errno.Ok
                            || qpA.RdmaRead(new Sge(back, (uint)half, mrA.Key), mine, mrB.Key) != Errno.Ok)
                        {
                            Interlocked.Increment(ref failures);
                            continue;
                        }
                        tb.Client.Read(back, readBack);
                        if (!readBack.AsSpan().SequenceEqual(data)) Interlocked.Increment(ref mismatches);
                        lastData[writer] = data;
                    }
                }
                finally { Interlocked.Decrement(ref writersLeft); }
            }) { Name = $"rdma-writer-{w}" };
        }
        var forker = new Thread(() =>
        {
            while (Volatile.Read(ref writersLeft) > 0)
            {
                var child = tb.Server.Fork();
                child.Exit();
                forks++;
            }
        }) { Name = "forker" };
        foreach (var t in writers) t.Start();
        forker.Start();
        foreach (var t in writers) t.Join();
        forker.Join();
        tb.NicB.FlushWork();
        bool ok = failures == 0 && mismatches == 0 && mrB.Counters.StaleTranslations == 0 && mrA.Counters.StaleTranslations == 0;
        for (int w = 0; w < 2 && ok; w++)
            ok &= lastData[w] != null && Mlx5Testbed.Matches(tb.Server, target + (ulong)(w * half), lastData[w]);
        var counters = Merge(mrB.Snapshot());
        counters["forks"] = forks;
        counters["failed_operations"] = failures;
        counters["read_back_mismatches"] = mismatches;
        counters["requester_stale_translations"] = mrA.Counters.StaleTranslations;
        counters["eq_deferred"] = tb.NicB.DeferredFaults;
        return Finish(tb, "odp-race-stress", counters, ok);
    }

    /// <summary>
    /// F.2.6 — deregistration under load: four client threads each RDMA WRITE one page of the server's
    /// region; their responder faults are held in flight (after taking the mkey reference); dereg is
    /// called and must block until they drain; the faults then complete and every written page is
    /// intact. A write after dereg fails with a remote access error.
    /// </summary>
    public static Mlx5WorkloadResult DeregUnderLoad(int pages, int seed)
    {
        const int Writers = 4;
        pages = Math.Max(pages, Writers);
        using var tb = new Mlx5Testbed();
        ulong target = Mlx5Testbed.Map(tb.Server, pages);
        var mrB = tb.Register(tb.NicB, tb.PdB, target, pages);
        ulong src = Mlx5Testbed.Map(tb.Client, Writers);
        var mrA = tb.Register(tb.NicA, tb.PdA, src, Writers);
        var data = Mlx5Testbed.Pattern((long)Writers * Page.Size, seed);
        tb.Client.Write(src, data);

        var gate = new WaitQueue("odp_demo.fault_gate");
        int inFlight = 0;
        bool open = false;
        tb.NicB.FaultInFlight = _ =>
        {
            Interlocked.Increment(ref inFlight);
            gate.WaitEvent(0, _ => Volatile.Read(ref open));
        };
        int stride = pages / Writers;
        var results = new Errno[Writers];
        var writers = new Thread[Writers];
        for (int w = 0; w < Writers; w++)
        {
            int writer = w;
            var qpA = tb.NicA.CreateQp(tb.PdA);
            LoopbackFabric.Connect(qpA, tb.NicB.CreateQp(tb.PdB));
            writers[w] = new Thread(() => results[writer] = qpA.RdmaWrite(
                new Sge(src + (ulong)writer * Page.Size, Page.Size, mrA.Key), target + (ulong)(writer * stride) * Page.Size, mrB.Key)) { Name = $"rdma-writer-{w}" };
            writers[w].Start();
        }
        SpinWait.SpinUntil(() => Volatile.Read(ref inFlight) == Writers, TimeSpan.FromSeconds(30));
        int useCountAtDereg = mrB.UseCount;
        var deregResult = Errno.EINVAL;
        var dereg = new Thread(() => deregResult = tb.NicB.DeregMr(mrB)) { Name = "dereg" };
        dereg.Start();
        bool blocked = !dereg.Join(TimeSpan.FromMilliseconds(100));
        Volatile.Write(ref open, true);
        gate.WakeUpAll();
        foreach (var t in writers) t.Join();
        dereg.Join();
        tb.Forget(mrB);
        tb.NicB.FaultInFlight = null;

        bool ok = blocked && deregResult == Errno.Ok;
        for (int w = 0; w < Writers; w++)
        {
            ok &= results[w] == Errno.Ok;
            ok &= Mlx5Testbed.Matches(tb.Server, target + (ulong)(w * stride) * Page.Size, data.AsSpan(w * Page.Size, Page.Size));
        }
        var late = tb.QpA.RdmaWrite(new Sge(src, Page.Size, mrA.Key), target, mrB.Key);
        var counters = Merge(mrB.Snapshot());
        counters["faults_in_flight_at_dereg"] = Volatile.Read(ref inFlight);
        counters["use_count_at_dereg"] = useCountAtDereg;
        counters["dereg_blocked"] = blocked ? 1 : 0;
        counters["write_after_dereg_errno"] = (long)late;
        return Finish(tb, "odp-dereg-under-load", counters, ok && late == Errno.EACCES);
    }

    /// <summary>
    /// F.2.7 — page migration in the mm: the server's region (whole 2 MiB blocks of base pages, CPU
    /// written, mapped by the registration snapshot) is read by RDMA, then <c>MADV_COLLAPSE</c> copies
    /// every block into a new transparent huge page. The MTT entries are zapped; the next RDMA
    /// transfers fault and map the new physical pages (translations checked against the CPU).
    /// </summary>
    public static Mlx5WorkloadResult PageMigration(int pages, int seed)
    {
        pages = Math.Max(Page.PmdPages, (pages + Page.PmdPages - 1) / Page.PmdPages * Page.PmdPages);
        var options = new Mlx5TestbedOptions { Nic = new Mlx5Options { InlineFaults = true, CheckTranslations = true } };
        using var tb = new Mlx5Testbed(options);
        long bytes = (long)pages * Page.Size;
        ulong target = Mlx5Testbed.Map(tb.Server, pages);
        tb.Server.Madvise(target, (ulong)bytes, Advice.NoHugePage);
        var data = Mlx5Testbed.Pattern(bytes, seed);
        tb.Server.Write(target, data);
        tb.Server.Madvise(target, (ulong)bytes, Advice.HugePage);
        var mrB = tb.Register(tb.NicB, tb.PdB, target, pages);
        long snapshotMapped = mrB.Umem!.MappedPages;
        ulong src = Mlx5Testbed.Map(tb.Client, pages);
        var mrA = tb.Register(tb.NicA, tb.PdA, src, pages);
        bool ok = tb.QpA.RdmaRead(new Sge(src, (uint)bytes, mrA.Key), target, mrB.Key) == Errno.Ok && Mlx5Testbed.Matches(tb.Client, src, data);
        long faultsBeforeMigration = mrB.Counters.PageFaults;
        ulong pfnBefore = tb.Server.Mm.EntryAt(target).Pfn;

        tb.Server.Madvise(target, (ulong)bytes, Advice.Collapse);
        var entry = tb.Server.Mm.EntryAt(target);
        long mappedAfterMigration = mrB.Umem.MappedPages;

        ok &= tb.QpA.RdmaRead(new Sge(src, (uint)bytes, mrA.Key), target, mrB.Key) == Errno.Ok && Mlx5Testbed.Matches(tb.Client, src, data);
        var second = Mlx5Testbed.Pattern(bytes, seed + 1);
        tb.Client.Write(src, second);
        ok &= tb.QpA.RdmaWrite(new Sge(src, (uint)bytes, mrA.Key), target, mrB.Key) == Errno.Ok && Mlx5Testbed.Matches(tb.Server, target, second);
        ok &= mrB.Counters.StaleTranslations == 0;
        var counters = Merge(mrB.Snapshot());
        counters["snapshot_mapped_pages"] = snapshotMapped;
        counters["page_faults_before_migration"] = faultsBeforeMigration;
        counters["mapped_after_migration"] = mappedAfterMigration;
        counters["pfn_changed"] = entry.Pfn != pfnBefore ? 1 : 0;
        counters["huge_after_migration"] = entry.IsHuge ? 1 : 0;
        return Finish(tb, "odp-page-migration", counters, ok);
    }
}
