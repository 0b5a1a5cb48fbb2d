using NUnit.Framework;

namespace Hmm.HmmSim.Tests.Demos;

/// <summary>
/// Each GPU demo's mechanism (drivers.md F.1 / F.3), asserted through <c>hmmsim run NAME --json</c>:
/// the driver counters and <c>dataVerified</c>, never console text (issue 15, acceptance 1).
/// </summary>
public sealed class GpuDemoMechanismTests
{
    [Test]
    public void First_touch_mirrors_every_page_in_place_with_zero_migrations()
    {
        var r = HmmSimProcess.RunJson("first-touch", "--pages", "2048");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True);
            Assert.That(r.Counter("faults"), Is.EqualTo(2048), "one fault per page");
            Assert.That(r.Counter("serviced"), Is.EqualTo(2048));
            Assert.That(r.Counter("replays"), Is.EqualTo(r.Counter("batches")), "one replay per batch");
            Assert.That(r.Counter("pagesToVram"), Is.Zero, "nouveau never migrates on a GPU fault");
            Assert.That(r.Counter("pagesMappedSystem"), Is.EqualTo(2048), "GPU PTEs at system pages");
            Assert.That(r.Counter("vramChunks"), Is.Zero);
        });
    }

    [Test]
    public void First_touch_under_the_uvm_policy_migrates_instead()
    {
        var r = HmmSimProcess.RunJson("first-touch", "--pages", "1024", "--policy", "uvm");
        Assert.That(r.DataVerified(), Is.True);
        Assert.That(r.Counter("pagesToVram"), Is.EqualTo(1024), "the contrast: UVM migrates the faulted pages");
        Assert.That(r.GetProperty("parameters").GetProperty("policy").GetString(), Is.EqualTo("uvm"));
    }

    [Test]
    public void Bind_migrates_2_MiB_chunks_and_the_kernel_takes_no_fault()
    {
        var r = HmmSimProcess.RunJson("bind", "--pages", "2048");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True);
            Assert.That(r.Counter("kernelFaults"), Is.Zero, "no GPU fault after bind");
            Assert.That(r.Counter("faults"), Is.Zero);
            Assert.That(r.Counter("boundPages"), Is.EqualTo(2048));
            Assert.That(r.Counter("vramChunks"), Is.EqualTo(4), "2 MiB chunks");
            Assert.That(r.Counter("copyEnginePages"), Is.EqualTo(1024), "copies for the populated half; the rest cleared");
            Assert.That(r.Counter("pagesMappedVram"), Is.EqualTo(2048), "VRAM PTEs set by the bind itself");
        });
    }

    [Test]
    public void A_cpu_touch_brings_back_one_page_and_nothing_re_migrates()
    {
        var r = HmmSimProcess.RunJson("cpu-touch", "--pages", "512");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True);
            Assert.That(r.Counter("pagesFromVram"), Is.EqualTo(512 / 16), "one migrate_to_ram per touch");
            Assert.That(r.Counter("kernelFaults"), Is.EqualTo(512 / 16), "only the touched pages fault");
            Assert.That(r.Counter("pagesToVram"), Is.EqualTo(512), "the bind only: no automatic re-migration");
            Assert.That(r.Counter("pagesMappedSystem"), Is.EqualTo(512 / 16), "the GPU maps them in system memory");
        });
    }

    [Test]
    public void Ping_pong_under_uvm_migrates_less_than_under_nouveau_and_stops()
    {
        var nouveau = HmmSimProcess.RunJson("ping-pong");
        var uvm = HmmSimProcess.RunJson("ping-pong-uvm");
        int pages = nouveau.Pages();
        long rounds = nouveau.Counter("rounds");
        Assert.Multiple(() =>
        {
            Assert.That(nouveau.DataVerified() && uvm.DataVerified(), Is.True);
            Assert.That(nouveau.Counter("migrations"), Is.EqualTo(2 * pages * rounds), "every page both ways every round");
            Assert.That(nouveau.Counter("migrationsLastRound"), Is.EqualTo(2 * pages), "nothing stops it");
            Assert.That(nouveau.Counter("pins"), Is.Zero);
            Assert.That(uvm.Counter("migrations"), Is.LessThan(nouveau.Counter("migrations")));
            Assert.That(uvm.Counter("thrashingDetected"), Is.GreaterThanOrEqualTo(pages));
            Assert.That(uvm.Counter("pins"), Is.EqualTo(pages), "pinned in system memory");
            Assert.That(uvm.Counter("migrationsLastRound"), Is.Zero, "migrations stopped");
        });
    }

    [Test]
    public void Ping_pong_with_policy_uvm_is_the_uvm_demo()
    {
        var viaOption = HmmSimProcess.RunJson("ping-pong", "--policy", "uvm");
        var named = HmmSimProcess.RunJson("ping-pong-uvm");
        Assert.That(viaOption.Counter("migrations"), Is.EqualTo(named.Counter("migrations")));
        Assert.That(viaOption.Counter("pins"), Is.EqualTo(named.Counter("pins")));
    }

    [Test]
    public void Ping_pong_without_a_policy_costs_linearly_in_pages()
    {
        var small = HmmSimProcess.RunJson("ping-pong", "--pages", "8");
        var large = HmmSimProcess.RunJson("ping-pong", "--pages", "32");
        Assert.That(large.Counter("migrations"), Is.EqualTo(4 * small.Counter("migrations")), "4x the pages, exactly 4x the migrations");
        Assert.That(large.Counter("migrationsLastRound"), Is.EqualTo(2 * 32));
        // Each round also pays a fixed kernel launch and the 100 µs gap, so time grows by less than 4x.
        Assert.That(large.SimulatedNs(), Is.GreaterThan(small.SimulatedNs()));
    }

    [Test]
    public void An_munmap_cancels_exactly_the_faults_on_the_hole()
    {
        var r = HmmSimProcess.RunJson("invalidation-race", "--pages", "256");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True, "every surviving thread read its page; every thread on the hole failed");
            Assert.That(r.Counter("cancels"), Is.EqualTo((256 / 2) - (256 / 16)), "the faulting pages of the unmapped upper half");
            Assert.That(r.Counter("threadsFailed"), Is.EqualTo(r.Counter("cancels")));
            Assert.That(r.Counter("notifierInvalidations"), Is.GreaterThan(0), "PFNCLR reached the mirror");
        });
    }

    [Test]
    public void Gpu_atomics_use_exclusive_entries_and_a_cpu_read_revokes_one_page()
    {
        var r = HmmSimProcess.RunJson("atomics");
        long threads = r.Counter("threads");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True, "every counter exact");
            Assert.That(r.Counter("exclusiveFaults"), Is.GreaterThanOrEqualTo(1));
            Assert.That(r.Counter("pagesExclusive"), Is.EqualTo(r.Pages()));
            Assert.That(r.Counter("revocations"), Is.GreaterThanOrEqualTo(1));
            Assert.That(r.Counter("firstKernelFaults"), Is.EqualTo(threads));
            Assert.That(r.Counter("secondKernelFaults"), Is.EqualTo(threads / r.Pages()), "only the revoked page's threads re-fault");
            Assert.That(r.Counter("pagesToVram"), Is.Zero);
        });
    }

    [Test]
    public void A_fault_storm_is_de_duplicated_to_the_distinct_pages()
    {
        var r = HmmSimProcess.RunJson("fault-storm");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True);
            Assert.That(r.Counter("kernelFaults"), Is.EqualTo(10_000));
            Assert.That(r.Counter("ringOverflows"), Is.EqualTo(10_000 - 4096), "the ring holds 4096 entries");
            Assert.That(r.Counter("faults"), Is.EqualTo(4096));
            Assert.That(r.Counter("serviced"), Is.EqualTo(16), "16 handled");
            Assert.That(r.Counter("batches"), Is.EqualTo(1));
            Assert.That(r.Counter("replays"), Is.EqualTo(1));
        });
    }

    [Test]
    public void Unload_evicts_every_vram_page_with_the_data_intact()
    {
        var r = HmmSimProcess.RunJson("unload", "--pages", "512");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True);
            Assert.That(r.Counter("vramPagesBeforeUnload"), Is.EqualTo(512));
            Assert.That(r.Counter("pagesFromVram"), Is.EqualTo(512));
            Assert.That(r.Counter("vramChunksAfterUnload"), Is.Zero);
        });
    }

    [Test]
    public void Thrashing_is_detected_throttled_pinned_unpinned_and_reset()
    {
        var r = HmmSimProcess.RunJson("thrashing");
        int pages = r.Pages();
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True);
            Assert.That(r.Counter("thrashingDetected"), Is.GreaterThanOrEqualTo(pages));
            Assert.That(r.Counter("throttled"), Is.GreaterThan(0), "throttling before pinning");
            Assert.That(r.Counter("pins"), Is.EqualTo(pages));
            Assert.That(r.Counter("remoteMaps"), Is.GreaterThanOrEqualTo(1), "pinned pages mapped remotely");
            Assert.That(r.Counter("migrationsWhilePinned"), Is.Zero);
            Assert.That(r.Counter("unpins"), Is.EqualTo(pages), "the pins expire after 150 ms");
            Assert.That(r.Counter("thrashingResets"), Is.GreaterThanOrEqualTo(1), "reset after 1 s of quiet");
        });
    }

    [Test]
    public void Nouveau_never_detects_thrashing_on_the_same_workload()
    {
        var r = HmmSimProcess.RunJson("thrashing", "--policy", "nouveau");
        Assert.That(r.DataVerified(), Is.True);
        Assert.That(r.Counter("pins") + r.Counter("thrashingDetected") + r.Counter("pagesToVram"), Is.Zero);
    }

    [Test]
    public void Prefetch_density_migrates_whole_blocks_however_sparse_the_touches()
    {
        var r = HmmSimProcess.RunJson("prefetch-density");
        Assert.That(r.DataVerified(), Is.True);
        foreach (int k in new[] { 1, 2, 4, 8 })
        {
            Assert.That(r.Counter($"touchedK{k}"), Is.EqualTo(512 / k));
            Assert.That(r.Counter($"migratedK{k}"), Is.EqualTo(512), $"k = {k}: the whole 2 MiB block");
        }
        Assert.That(r.Counter("prefetchedPages"), Is.GreaterThan(0));
    }

    [Test]
    public void Prefetch_density_under_nouveau_migrates_nothing()
    {
        var r = HmmSimProcess.RunJson("prefetch-density", "--pages", "1024", "--policy", "nouveau");
        Assert.That(r.DataVerified(), Is.True);
        Assert.That(r.Counter("migratedK1") + r.Counter("migratedK2") + r.Counter("prefetchedPages"), Is.Zero);
    }

    [Test]
    public void Oversubscription_evicts_lru_blocks_within_the_budget_and_loses_no_data()
    {
        var r = HmmSimProcess.RunJson("oversubscription");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True, "every word equals the reference model");
            Assert.That(r.Counter("evictions"), Is.GreaterThan(0));
            Assert.That(r.Counter("vramPeakPages"), Is.LessThanOrEqualTo(r.Counter("vramBudgetPages")));
            Assert.That(r.Counter("thrashingDetected"), Is.Zero, "evictions are not thrashing");
        });
    }

    [Test]
    public void Another_seed_changes_the_data_and_it_still_verifies()
    {
        var r = HmmSimProcess.RunJson("unload", "--pages", "64", "--seed", "4242");
        Assert.That(r.DataVerified(), Is.True);
        Assert.That(r.GetProperty("parameters").GetProperty("seed").GetUInt64(), Is.EqualTo(4242UL));
    }
}
