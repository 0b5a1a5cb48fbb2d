using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Interleaving;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Driver;

/// <summary>
/// The UVM-style policy on the same GPU (drivers.md F.3): thrashing mitigation, density prefetch,
/// oversubscription with LRU eviction, access counters — asserted through counters, simulated
/// time and end-to-end data (issue 13, acceptance 1). Replay policies: <see cref="ReplayPolicyTests"/>.
/// </summary>
public sealed class UvmWorkloadTests : GpuTestBase
{
    // F.3.1: CPU and GPU alternately write the same pages every 100 µs. Two pages keep one GPU
    // round (launch 150 µs + batch 80 µs + 2 × 45 µs) inside the 500 µs lapse with the published
    // cost model, so the defaults apply unchanged: detection after 3 events, throttling, a pin
    // after 10 periods with remote mapping, the unpin 150 ms later, the block reset after 1 s.
    // The two pages are one page apart: adjacent pages would coalesce into one fault range, and
    // [FaultPolicy] decides per range (UVM decides per page), so whichever page pinned first would
    // hold the other on a remote mapping too and it would never reach its own pin — which page
    // pins first depends on the CPU-side nap timing, not on the thrashing mechanism under test.
    [Test]
    public void Thrashing_pages_are_throttled_then_pinned_and_mapped_remotely_then_unpinned()
    {
        Uvm();
        const int pages = 2;
        ulong buf = Filled(2 * pages);
        var gpuWrite = GpuWorkloads.WriteEveryPage(buf, 2 * pages * PageSize, 0) with { Threads = pages, StrideBytes = 2 * PageSize };
        int round = 0;
        void PingPong()
        {
            round++;
            Svm.Run(gpuWrite with { Value = (ulong)round });
            for (int i = 0; i < pages; i++)
            {
                Assert.That(P.Load<ulong>(buf + (ulong)(2 * i) * PageSize), Is.EqualTo((ulong)round), $"round {round}: the GPU's write");
                P.Store(buf + (ulong)(2 * i) * PageSize + 8, (ulong)round);
            }
            Device.Clock.Advance(100 * Us);
        }

        PingPong();
        PingPong();
        Assert.That(Counters.ThrashingDetected, Is.EqualTo(pages), "3 migrations within 500 µs: GPU, CPU, GPU");
        while (Counters.Pins < pages && round < 40) PingPong();
        var pinned = Counters;
        Assert.Multiple(() =>
        {
            Assert.That(pinned.Pins, Is.EqualTo(pages), "pinned after 10 throttling periods");
            Assert.That(pinned.Throttled, Is.GreaterThan(0), "throttling came first");
            Assert.That(Svm.Policy.Thrashing.PinnedPages, Is.EqualTo(pages));
        });
        // Pinned: the GPU maps the system page remotely; nothing migrates any more.
        PingPong();
        long toVram = Counters.PagesToVram, fromVram = Counters.PagesFromVram;
        for (int r = 0; r < 5; r++) PingPong();
        Assert.Multiple(() =>
        {
            Assert.That(Counters.RemoteMaps, Is.GreaterThanOrEqualTo(1));
            Assert.That(GpuMapsVram(buf), Is.False, "remote mapping of the system page");
            Assert.That(Counters.PagesToVram, Is.EqualTo(toVram), "no migration while pinned");
            Assert.That(Counters.PagesFromVram, Is.EqualTo(fromVram));
        });
        // 150 ms later the pins expire: the remote mappings go and the next GPU access migrates again.
        Device.Clock.Advance(150 * Ms);
        Svm.Run(gpuWrite with { Value = 777 });
        Assert.Multiple(() =>
        {
            Assert.That(Counters.Unpins, Is.EqualTo(pages));
            Assert.That(Svm.Policy.Thrashing.PinnedPages, Is.Zero);
            Assert.That(Counters.PagesToVram, Is.GreaterThan(toVram), "re-evaluated: migrated again");
            Assert.That(GpuMapsVram(buf), Is.True);
        });
        // After 1 s of quiet the block's thrashing state is reset.
        long resets = Counters.ThrashingResets;
        Device.Clock.Advance(1000 * Ms);
        PingPong();
        Assert.That(Counters.ThrashingResets, Is.GreaterThan(resets));
        Assert.That(P.Load<ulong>(buf + 8), Is.EqualTo((ulong)round));
        Finish();
    }

    // C.3, CPU side: once a page thrashes and the GPU holds a throttling period, a CPU fault on
    // it naps (simulated time) until the period ends before migrating it back. UVM naps before it
    // takes anything: the nap runs in [BeforeMigrateToRam], before migrate_vma_setup — the page is
    // still device-private (no migration entry), still mapped by the GPU in VRAM (no MIGRATE
    // invalidation yet), and the thread holds only what the core holds when it calls
    // migrate_to_ram (the mmap read lock and the fault page's lock): no U, no notifier section.
    [TestCase(GpuPolicyMode.Uvm)]
    [TestCase(GpuPolicyMode.Nouveau)]
    public void A_cpu_fault_on_a_throttled_page_naps_before_migrating_it_back(GpuPolicyMode mode)
    {
        if (mode == GpuPolicyMode.Uvm) Uvm();
        const int pages = 2;
        ulong buf = Filled(pages);
        var gpuWrite = GpuWorkloads.WriteEveryPage(buf, pages * PageSize, 0);
        long cpuSideNs = 0;
        var naps = new List<(ulong Va, PteKind Entry, bool? GpuMapsVram, int LocksHeld, int LocksAtMigrateToRam)>();
        int locksAtMigrateToRam = -1;
        TestHooks.Callback = (point, subject, _) =>
        {
            // do_swap_page, page locked and referenced, about to call the driver's migrate_to_ram.
            if (point == TestHookPoint.BeforeMigrateToRam && ReferenceEquals(subject, P.Mm)) locksAtMigrateToRam = LockValidator.HeldLockCount;
        };
        Svm.CpuThrottlingStarted = (va, _) => naps.Add((va, P.Mm.EntryAt(va).Kind, GpuMapsVram(va), LockValidator.HeldLockCount, locksAtMigrateToRam));
        try
        {
            for (int round = 1; round <= 4; round++)
            {
                Svm.Run(gpuWrite with { Value = (ulong)round });
                long before = Device.Clock.Now;
                for (int i = 0; i < pages; i++)
                    Assert.That(P.Load<ulong>(buf + (ulong)i * PageSize), Is.EqualTo((ulong)round), $"round {round}: the GPU's write, after any nap");
                cpuSideNs += Device.Clock.Now - before;
                Device.Clock.Advance(100 * Us);
            }
        }
        finally
        {
            TestHooks.Callback = null;
            Svm.CpuThrottlingStarted = null;
        }
        var c = Counters;
        if (mode == GpuPolicyMode.Uvm)
        {
            Assert.Multiple(() =>
            {
                Assert.That(c.ThrashingDetected, Is.GreaterThanOrEqualTo(pages), "both pages thrash");
                Assert.That(c.CpuNaps, Is.GreaterThan(0), "the CPU faults napped once the pages thrashed");
                Assert.That(c.CpuNapNs, Is.GreaterThan(0).And.LessThanOrEqualTo(c.CpuNaps * Svm.Policy.Options.ThrashingNapNs), "a nap lasts at most one throttling period");
                Assert.That(cpuSideNs, Is.GreaterThanOrEqualTo(c.CpuNapNs), "the naps passed on the simulated clock");
                Assert.That(c.PagesFromVram, Is.GreaterThanOrEqualTo(c.CpuNaps), "a napping CPU fault still brought its page back");
                Assert.That(naps, Has.Count.EqualTo(c.CpuNaps), "each nap reported once, as it started");
                foreach (var nap in naps)
                {
                    Assert.That(nap.Va, Is.GreaterThanOrEqualTo(buf).And.LessThan(buf + pages * PageSize));
                    Assert.That(nap.Entry, Is.EqualTo(PteKind.DevicePrivate), "napping before migrate_vma_setup: no migration entry yet");
                    Assert.That(nap.GpuMapsVram, Is.True, "no MIGRATE invalidation yet: the GPU still maps the page in VRAM");
                    Assert.That(nap.LocksAtMigrateToRam, Is.GreaterThanOrEqualTo(0), "the nap runs inside this fault's migrate_to_ram");
                    Assert.That(nap.LocksHeld, Is.EqualTo(nap.LocksAtMigrateToRam), "the nap holds nothing the core did not already hold (no U, no notifier section)");
                }
            });
        }
        else
        {
            Assert.That(c.CpuNaps, Is.Zero, "nouveau never naps");
            Assert.That(naps, Is.Empty);
        }
        Finish();
    }

    // F.3.2: the GPU touches 1 of every k pages of a CPU-filled 2 MiB block; with 64 KiB big-page
    // growth and the 51 % subtree rule the whole block migrates. The policy decides per serviced
    // range (the DSL's [FaultPolicy] granularity), so with k > 1 the ranges come one page at a time
    // in address order and the resident prefix keeps doubling: the faults at pages 0, 16, 32, 64,
    // 128 and 256 each prefetch up to the next power of two (15 + 15 + 31 + 63 + 127 + 255 = 506
    // pages), every other fault finds its page already there. UVM services a block's faults of a
    // batch together and would count only the untouched pages as prefetch.
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(4)]
    [TestCase(8)]
    public void Prefetch_density_turns_sparse_faults_into_whole_block_migration(int k)
    {
        Uvm();
        ulong buf = Filled(2 * Page.PmdPages);
        ulong block = (buf + Page.PmdSize - 1) & ~(Page.PmdSize - 1); // one whole aligned block inside the buffer
        var run = Svm.Run(GpuWorkloads.PrefetchDensity(block, k));
        int touched = Page.PmdPages / k;
        var c = Counters;
        Assert.Multiple(() =>
        {
            Assert.That(run.Completed && run.ThreadsDone == touched, Is.True);
            Assert.That(c.Serviced, Is.EqualTo(touched));
            Assert.That(c.PagesToVram, Is.EqualTo(Page.PmdPages), "the whole 2 MiB block");
            Assert.That(c.PrefetchedPages, Is.EqualTo(Page.PmdPages - touched), "decided once per block per batch: every page the batch did not fault on");
            Assert.That(GpuMapsVram(block + PageSize), Is.True, "prefetched pages are mapped too");
        });
        int firstPage = (int)((block - buf) / PageSize);
        Assert.That(Device.Executor.ResultOf(1), Is.EqualTo(Word(firstPage + k)));
        Finish();
    }

    [Test]
    public void Without_big_page_growth_half_density_stays_at_50_percent_and_prefetches_nothing()
    {
        Uvm(new UvmPolicyOptions { PrefetchGrowToBigPages = false });
        ulong buf = Filled(2 * Page.PmdPages);
        ulong block = (buf + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        Svm.Run(GpuWorkloads.PrefetchDensity(block, 2));
        Assert.That(Counters.PrefetchedPages, Is.Zero);
        Assert.That(Counters.PagesToVram, Is.EqualTo(Page.PmdPages / 2));
        Finish();
    }

    [Test]
    public void Nouveau_mode_never_prefetches_or_migrates_on_the_same_workload()
    {
        ulong buf = Filled(2 * Page.PmdPages);
        ulong block = (buf + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        Svm.Run(GpuWorkloads.PrefetchDensity(block, 8));
        Assert.That(Counters.PrefetchedPages + Counters.PagesToVram, Is.Zero);
        Finish();
    }

    private ulong[] CpuWords(ulong buf, int pages)
    {
        var words = new ulong[pages * PageSize / 8];
        var bytes = new byte[pages * PageSize];
        P.Read(buf, bytes);
        Buffer.BlockCopy(bytes, 0, words, 0, bytes.Length);
        return words;
    }

    // F.3.4: working set 1.5× the VRAM budget, walked sequentially: 2 MiB LRU evictions happen,
    // are not thrashing, VRAM never exceeds the budget, and every word read equals the last written.
    [Test]
    public void Oversubscription_sequential_evicts_lru_blocks_and_loses_no_data()
    {
        Uvm(new UvmPolicyOptions { VramChunks = 4 });
        const int pages = 6 * Page.PmdPages; // 12 MiB over an 8 MiB budget
        ulong buf = Filled(pages);
        for (int pass = 1; pass <= 2; pass++)
        {
            var run = Svm.Run(GpuWorkloads.OversubscribedSequential(buf, (ulong)pages * PageSize, 0xA000UL + (ulong)pass));
            Assert.That(run.Completed && run.ThreadsFailed == 0, Is.True);
            Assert.That(Svm.VramPagesInUse, Is.LessThanOrEqualTo(4L * Page.PmdPages), "never past the budget");
        }
        var c = Counters;
        Assert.Multiple(() =>
        {
            Assert.That(c.Evictions, Is.GreaterThan(0));
            Assert.That(c.EvictedPages, Is.GreaterThan(0));
            Assert.That(c.ThrashingDetected, Is.Zero, "evictions are not thrashing events");
        });
        var words = CpuWords(buf, pages);
        for (int i = 0; i < pages; i++)
        {
            Assert.That(words[i * PageSize / 8], Is.EqualTo(0xA002UL), $"page {i}: the last GPU write");
            Assert.That(words[i * PageSize / 8 + 1], Is.Zero, $"page {i}: untouched word");
        }
        Finish();
    }

    // F.3.4, random: 20 000 random 8-byte writes over the same oversubscribed working set, checked
    // word for word against a reference model.
    [Test]
    public void Oversubscription_random_loses_no_data()
    {
        Uvm(new UvmPolicyOptions { VramChunks = 4 });
        const int pages = 6 * Page.PmdPages;
        ulong buf = Filled(pages);
        var model = new Dictionary<ulong, ulong>();
        for (int i = 0; i < pages; i++) model[buf + (ulong)i * PageSize] = Word(i);
        for (int pass = 0; pass < 2; pass++)
        {
            var kernel = GpuWorkloads.OversubscribedRandom(buf, (ulong)pages * PageSize, 20_000, 0xB000UL + (ulong)pass, seed: 11 + (ulong)pass);
            var run = Svm.Run(kernel);
            Assert.That(run.Completed && run.ThreadsFailed == 0, Is.True);
            kernel.ApplyTo(model, _ => true);
        }
        Assert.That(Counters.Evictions, Is.GreaterThan(0));
        var words = CpuWords(buf, pages);
        for (int w = 0; w < words.Length; w++)
        {
            model.TryGetValue(buf + (ulong)w * 8, out ulong expected);
            if (words[w] != expected) Assert.Fail($"word 0x{buf + (ulong)w * 8:x}: {words[w]:x} != {expected:x}");
        }
        Finish();
    }

    // F.3.5: the GPU reads remote memory with accessed_by set: no migration on fault, a counter
    // notification per 256 accesses of a 2 MiB region; with counter-driven migration the touched
    // 64 KiB sub-regions move to VRAM, after which the accesses are local and raise nothing.
    [TestCase(false)]
    [TestCase(true)]
    public void Access_counters_notify_at_256_remote_accesses_and_optionally_migrate(bool migrate)
    {
        Uvm(new UvmPolicyOptions { AccessedBy = true, AccessCounterMigration = migrate });
        const int pages = 2 * Page.PmdPages;
        ulong buf = Filled(2 * pages);
        ulong region = (buf + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        var reads = new KernelDescription
        {
            Base = region, Bytes = (ulong)pages * PageSize, Threads = pages, Pattern = KernelPattern.Strided, StrideBytes = PageSize,
        };
        var run = Svm.Run(reads);
        var c = Counters;
        Assert.Multiple(() =>
        {
            Assert.That(run.Completed, Is.True);
            Assert.That(c.AccessCounterNotifications, Is.EqualTo(4), "512 remote accesses per region: 2 notifications each");
            Assert.That(c.RemoteMaps, Is.GreaterThan(0));
            Assert.That(c.CounterMigratedPages, Is.EqualTo(migrate ? pages : 0));
            Assert.That(Svm.VramPagesInUse, Is.EqualTo(migrate ? pages : 0));
        });
        run = Svm.Run(reads);
        Assert.That(run.FaultsRaised, Is.Zero, "mapped since the first run");
        Assert.That(Counters.AccessCounterNotifications, Is.EqualTo(migrate ? 4 : 8), "local accesses are not counted");
        Assert.That(Device.Executor.ResultOf(3), Is.EqualTo(Word((int)((region - buf) / PageSize) + 3)));
        Finish();
    }

    // The policy is per run: switching back to nouveau mode keeps the data and stops migrating.
    [Test]
    public void Switching_policies_between_runs_keeps_the_data()
    {
        Uvm();
        ulong buf = Filled(64);
        Svm.Run(GpuWorkloads.WriteEveryPage(buf, 64 * PageSize, 5));
        long toVram = Counters.PagesToVram;
        Assert.That(toVram, Is.GreaterThanOrEqualTo(64));
        Svm.Switch(GpuPolicyMode.Nouveau);
        for (int i = 0; i < 64; i += 8) Assert.That(P.Load<ulong>(buf + (ulong)i * PageSize), Is.EqualTo(5UL));
        Svm.Run(GpuWorkloads.WriteEveryPage(buf, 64 * PageSize, 6));
        Assert.That(Counters.PagesToVram, Is.EqualTo(toVram));
        for (int i = 0; i < 64; i++) Assert.That(P.Load<ulong>(buf + (ulong)i * PageSize), Is.EqualTo(6UL));
        Finish();
    }
}
