using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Driver;

/// <summary>
/// The nouveau-like GPU's workloads of drivers.md F.1, each mechanism asserted through the
/// driver's counters, the GPU page table, simulated time and end-to-end data (issue 13,
/// acceptance 1). The driver is the DSL declaration <see cref="NouveauGpu"/> in nouveau mode.
/// </summary>
public sealed class NouveauWorkloadTests : GpuTestBase
{
    // F.1.1: GPU reads a CPU-filled 64 MiB buffer (two threads per page): one fault per access,
    // sorted and de-duplicated, one replay per batch, GPU PTEs at system pages, zero migrations.
    [Test]
    public void First_touch_mirrors_system_pages_with_one_replay_per_batch_and_no_migration()
    {
        const int pages = 16384;
        ulong buf = Filled(pages);
        var kernel = new KernelDescription
        {
            Base = buf, Bytes = (ulong)pages * PageSize, Threads = 2 * pages, Pattern = KernelPattern.Strided, StrideBytes = PageSize / 2,
        };
        var run = Svm.Run(kernel);
        var c = Counters;
        Assert.Multiple(() =>
        {
            Assert.That(run.Completed, Is.True);
            Assert.That(run.ThreadsDone, Is.EqualTo(2 * pages));
            Assert.That(c.Faults, Is.EqualTo(2 * pages), "one fault per faulting access");
            Assert.That(c.Serviced, Is.EqualTo(pages), "sorted and de-duplicated: one service per page");
            Assert.That(c.Duplicates, Is.EqualTo(pages));
            Assert.That(c.Batches, Is.EqualTo(2 * pages / 4096), "the whole 4096-entry buffer per batch");
            Assert.That(c.Replays, Is.EqualTo(c.Batches), "one replay per batch");
            Assert.That(c.Cancels, Is.Zero);
            Assert.That(c.PagesToVram, Is.Zero, "nouveau never migrates on a GPU fault");
            Assert.That(c.PagesMappedVram, Is.Zero);
            Assert.That(c.PagesMappedSystem, Is.GreaterThanOrEqualTo(pages));
            Assert.That(Gpu.DeviceChunkCount, Is.Zero, "no VRAM chunk was ever needed");
        });
        for (int i = 0; i < pages; i += 997)
        {
            Assert.That(Device.Executor.ResultOf(2 * i), Is.EqualTo(Word(i)), $"thread {2 * i} read page {i}");
            Assert.That(GpuMapsVram(buf + (ulong)i * PageSize), Is.False, "host aperture: a system page");
        }
        using (var pin = P.PinUserPages(buf + 5 * PageSize, 1, write: false, longTerm: false))
        {
            Assert.That(Gpu.DeviceTable.Lookup(buf + 5 * PageSize, out var t), Is.True);
            Assert.That(t.Frame, Is.EqualTo(pin.Pfns[0]), "the GPU PTE points at the CPU's page");
        }
        Finish();
    }

    // F.1.2: bind migrates in 2 MiB chunks with copy-engine copies (clears for never-touched pages)
    // and maps VRAM directly: the kernel that follows takes no fault.
    [Test]
    public void Bind_migrates_2_MiB_chunks_and_the_following_kernel_takes_no_fault()
    {
        const int pages = 2048; // 8 MiB: 4 chunks
        ulong buf = Map((long)pages * PageSize);
        for (int i = 0; i < pages / 2; i++) P.Store(buf + (ulong)i * PageSize, Word(i)); // upper half never touched
        long copiedBefore = Device.Copy.PagesCopied;
        long moved = Svm.Bind(buf, buf + (ulong)pages * PageSize);
        var c = Counters;
        Assert.Multiple(() =>
        {
            Assert.That(moved, Is.EqualTo(pages));
            Assert.That(c.BindPages, Is.EqualTo(pages));
            Assert.That(c.PagesToVram, Is.EqualTo(pages / 2), "data copied for the populated half");
            Assert.That(Svm.VramPagesInUse, Is.EqualTo(pages), "the never-touched half cleared in VRAM");
            Assert.That(Gpu.DeviceChunkCount, Is.EqualTo(pages / Page.PmdPages), "2 MiB chunks, created as needed");
            Assert.That(Device.Copy.PagesCopied - copiedBefore, Is.EqualTo(pages / 2), "copies for populated pages only; the rest are cleared");
            Assert.That(c.PagesMappedVram, Is.EqualTo(pages), "VRAM PTEs set by the bind itself");
            Assert.That(GpuMapsVram(buf), Is.True);
            Assert.That(GpuMapsVram(buf + (ulong)(pages - 1) * PageSize), Is.True);
        });
        var run = Svm.Run(GpuWorkloads.ReadEveryPage(buf, (ulong)pages * PageSize));
        Assert.Multiple(() =>
        {
            Assert.That(run.Completed, Is.True);
            Assert.That(run.FaultsRaised, Is.Zero, "no GPU fault during the kernel");
            Assert.That(Device.Executor.ResultOf(7), Is.EqualTo(Word(7)));
            Assert.That(Device.Executor.ResultOf(pages - 1), Is.Zero, "a cleared page");
        });
        Finish();
    }

    // F.1.3: after bind, the CPU reads every 16th page: one single-page migrate_to_ram per touch,
    // the GPU PTE cleared for each, and the next GPU access maps system memory (no re-migration).
    [Test]
    public void A_cpu_touch_brings_back_one_page_and_the_gpu_then_maps_it_in_system_memory()
    {
        const int pages = 512;
        ulong buf = Filled(pages);
        Svm.Bind(buf, buf + (ulong)pages * PageSize);
        for (int i = 0; i < pages; i += 16) Assert.That(P.Load<ulong>(buf + (ulong)i * PageSize), Is.EqualTo(Word(i)));
        var c = Counters;
        Assert.Multiple(() =>
        {
            Assert.That(c.PagesFromVram, Is.EqualTo(pages / 16), "one page per touch");
            Assert.That(GpuMapsVram(buf), Is.Null, "the GPU PTE of a touched page is cleared");
            Assert.That(GpuMapsVram(buf + PageSize), Is.True, "its neighbour stays in VRAM");
        });
        var run = Svm.Run(GpuWorkloads.ReadEveryPage(buf, (ulong)pages * PageSize));
        Assert.Multiple(() =>
        {
            Assert.That(run.FaultsRaised, Is.EqualTo(pages / 16), "only the touched pages fault");
            Assert.That(Counters.PagesToVram, Is.EqualTo(pages), "no automatic re-migration");
            Assert.That(GpuMapsVram(buf), Is.False, "now mapped in system memory");
            Assert.That(Device.Executor.ResultOf(16), Is.EqualTo(Word(16)));
        });
        Finish();
    }

    // F.1.4: {bind; CPU writes one word per page} in a loop: every round moves every page both
    // ways, so the cost grows linearly with the pages (no policy stops it).
    [Test]
    public void Ping_pong_without_a_policy_costs_linearly_in_pages()
    {
        long Round(int pages, int rounds)
        {
            ulong buf = Filled(pages);
            long t0 = Device.Clock.Now;
            long from0 = Counters.PagesFromVram;
            for (int r = 0; r < rounds; r++)
            {
                Svm.Bind(buf, buf + (ulong)pages * PageSize);
                for (int i = 0; i < pages; i++) P.Store(buf + (ulong)i * PageSize + 8, (ulong)r);
            }
            Assert.That(Counters.PagesFromVram - from0, Is.EqualTo((long)pages * rounds));
            for (int i = 0; i < pages; i++) Assert.That(P.Load<ulong>(buf + (ulong)i * PageSize), Is.EqualTo(Word(i)));
            return Device.Clock.Now - t0;
        }
        long small = Round(64, 4), large = Round(256, 4);
        Assert.That(Counters.PagesToVram, Is.EqualTo(4 * (64 + 256)));
        Assert.That((double)large / small, Is.InRange(3.0, 5.0), "4× the pages, about 4× the simulated time");
        Finish();
    }

    // F.1.5: a munmap while the GPU streams: the notifier clears the GPU PTEs (PFNCLR), faults on
    // the unmapped part are cancelled (their threads' channel killed), the rest completes. The
    // kernel skips pages 28..35 so the mapped and unmapped faulting pages never coalesce into one
    // range (see the ignored test below).
    [Test]
    public void An_munmap_during_a_kernel_cancels_the_faults_on_the_unmapped_part()
    {
        const int pages = 64;
        ulong buf = Filled(pages);
        Svm.Run(GpuWorkloads.ReadEveryPage(buf, 16 * PageSize)); // the first 16 pages mirrored
        long invalidations = Gpu.Invalidations;
        var touched = Enumerable.Range(0, pages).Where(i => i is < 28 or >= 36).ToArray();
        var ops = touched.Select(i => new DeviceOp(buf + (ulong)i * PageSize, DeviceAccess.Read)).ToArray();
        Device.Executor.LaunchOnePerThread(Gpu.Instance, 0, ops);
        Assert.That(Device.Run(), Is.EqualTo(touched.Length - 16), "the unmirrored pages fault");
        P.Munmap(buf + 32 * PageSize, 32 * PageSize);      // the faulting pages 36..63 vanish
        P.Munmap(buf, 8 * PageSize);                       // and 8 already-mirrored ones
        Assert.That(GpuMapsVram(buf), Is.Null, "PFNCLR: the GPU PTE is gone");
        Assert.That(Gpu.Invalidations, Is.GreaterThan(invalidations));
        for (int pass = 0; pass < 2; pass++)
        {
            Svm.ServiceAll();
            Device.Run();
        }
        Assert.Multiple(() =>
        {
            for (int t = 0; t < touched.Length; t++)
                Assert.That(Device.Executor.StateOf(t), Is.EqualTo(touched[t] >= 36 ? DeviceThreadState.Failed : DeviceThreadState.Done), $"page {touched[t]}");
            Assert.That(Counters.Cancels, Is.EqualTo(28));
            Assert.That(Device.Executor.ResultOf(20), Is.EqualTo(Word(20)));
        });
        Finish();
    }

    // nouveau services a one-page window per fault and cancels only what fails (A.3 step 3, A.4).
    [Test]
    public void Only_the_unmapped_pages_of_a_coalesced_run_are_cancelled()
    {
        ulong buf = Filled(64);
        var program = GpuWorkloads.ReadEveryPage(buf, 64 * PageSize).Build();
        Device.Executor.Launch(Gpu.Instance, 0, program.Ops, program.Starts);
        Device.Run();
        P.Munmap(buf + 32 * PageSize, 32 * PageSize);
        Svm.ServiceAll();
        Device.Run();
        for (int t = 0; t < 32; t++) Assert.That(Device.Executor.StateOf(t), Is.EqualTo(DeviceThreadState.Done), $"thread {t}");
        Finish();
    }

    // F.1.5 under real concurrency: the CPU mprotects and munmaps pieces from another thread while
    // the GPU runs; nothing stale is ever used and every invariant holds.
    [Test]
    public void Concurrent_mprotect_and_munmap_races_leave_a_consistent_mirror()
    {
        const int pages = 256;
        ulong buf = Filled(pages);
        using var stop = new ManualResetEventSlim();
        var cpu = new Thread(() =>
        {
            int k = 0;
            while (!stop.IsSet && k < 64)
            {
                ulong a = buf + (ulong)(k % 32) * 8 * PageSize;
                P.Mprotect(a, 4 * PageSize, Prot.Read);
                P.Mprotect(a, 4 * PageSize, Prot.Read | Prot.Write);
                k++;
            }
            P.Munmap(buf + 128 * PageSize, 64 * PageSize);
        });
        cpu.Start();
        for (int round = 0; round < 4; round++)
        {
            var run = Svm.Run(GpuWorkloads.WriteEveryPage(buf, (ulong)pages * PageSize, (ulong)round + 1));
            Assert.That(run.Completed, Is.True);
        }
        stop.Set();
        cpu.Join();
        var gone = Svm.Run(GpuWorkloads.WriteEveryPage(buf + 128 * PageSize, 64 * PageSize, 98));
        Assert.That(gone.ThreadsFailed, Is.EqualTo(64), "the unmapped pages' threads are cancelled");
        var last = Svm.Run(GpuWorkloads.WriteEveryPage(buf, 128 * PageSize, 99));
        Assert.That(last.ThreadsDone, Is.EqualTo(128));
        for (int i = 0; i < 128; i++) Assert.That(P.Load<ulong>(buf + (ulong)i * PageSize), Is.EqualTo(99UL));
        Finish();
    }

    // F.1.6: GPU atomics on malloc memory: device-exclusive entries; a CPU read revokes one
    // (the GPU PTE is cleared) and the next atomic on that page re-faults; the counts are exact.
    [Test]
    public void Gpu_atomics_use_exclusive_entries_revoked_by_a_cpu_read()
    {
        const int counters = 1024; // 2 pages of 8-byte counters
        ulong buf = Map(2 * PageSize);
        var kernel = GpuWorkloads.AtomicCounters(buf, counters, threads: 10_240);
        var run = Svm.Run(kernel);
        Assert.Multiple(() =>
        {
            Assert.That(run.Completed && run.ThreadsDone == 10_240, Is.True);
            Assert.That(Counters.ExclusiveFaults, Is.EqualTo(1), "one coalesced range of 2 pages");
            Assert.That(Gpu.PagesExclusive, Is.EqualTo(2));
            Assert.That(Gpu.DeviceTable.Lookup(buf, out var t) && t.Atomic, Is.True, "an atomic-capable GPU PTE");
        });
        Assert.That(P.Load<ulong>(buf + 8), Is.EqualTo(10UL), "10 240 threads over 1 024 counters");
        Assert.Multiple(() =>
        {
            Assert.That(Counters.Revocations, Is.EqualTo(1), "the CPU read restored one page");
            Assert.That(Gpu.DeviceTable.Lookup(buf, out _), Is.False);
            Assert.That(Gpu.DeviceTable.Lookup(buf + PageSize, out var t2) && t2.Atomic, Is.True, "the other page keeps its entry");
        });
        run = Svm.Run(kernel);
        Assert.That(run.FaultsRaised, Is.EqualTo(5120), "only the revoked page's threads re-fault");
        for (int i = 0; i < counters; i += 101) Assert.That(P.Load<ulong>(buf + (ulong)i * 8), Is.EqualTo(20UL));
        Finish();
    }

    // F.1.7: 10 000 threads on 16 pages: the ring overflows, one batch of 4096 entries is
    // de-duplicated to 16 serviced pages, one replay resumes every thread.
    [Test]
    public void A_fault_storm_of_ten_thousand_threads_services_sixteen_pages()
    {
        ulong buf = Filled(16);
        var run = Svm.Run(GpuWorkloads.FaultStorm(buf));
        var c = Counters;
        Assert.Multiple(() =>
        {
            Assert.That(run.Completed, Is.True);
            Assert.That(run.ThreadsDone, Is.EqualTo(10_000));
            Assert.That(run.FaultsRaised, Is.EqualTo(10_000));
            Assert.That(Device.Faults.Overflows, Is.EqualTo(10_000 - 4096), "the ring holds 4096 entries");
            Assert.That(c.Faults, Is.EqualTo(4096));
            Assert.That(c.Serviced, Is.EqualTo(16), "16 handled");
            Assert.That(c.Duplicates, Is.EqualTo(4096 - 16));
            Assert.That(c.Batches, Is.EqualTo(1));
            Assert.That(c.Replays, Is.EqualTo(1));
            Assert.That(Device.Executor.ResultOf(10_000 - 1), Is.EqualTo(Word((10_000 - 1) % 16)));
        });
        Finish();
    }

    // F.1.8: driver unload with VRAM pages: every chunk is evicted back to RAM, data intact.
    [Test]
    public void Unload_evicts_all_vram_with_the_data_intact()
    {
        const int pages = 1024;
        ulong buf = Filled(pages);
        Svm.Bind(buf, buf + (ulong)pages * PageSize);
        Svm.Run(GpuWorkloads.WriteEveryPage(buf + 512 * PageSize, 256 * PageSize, 0xFEED));
        Assert.That(Svm.VramPagesInUse, Is.EqualTo(pages));
        Assert.That(Svm.Unload(), Is.EqualTo(Hmm.Runtime.Errno.Ok));
        Assert.Multiple(() =>
        {
            Assert.That(Gpu.DeviceChunkCount, Is.Zero);
            Assert.That(Counters.PagesFromVram, Is.EqualTo(pages));
            Assert.That(Gpu.IsAttached, Is.False);
        });
        for (int i = 0; i < pages; i++)
            Assert.That(P.Load<ulong>(buf + (ulong)i * PageSize), Is.EqualTo(i is >= 512 and < 768 ? 0xFEEDUL : Word(i)), $"page {i}");
        Finish();
    }
}
