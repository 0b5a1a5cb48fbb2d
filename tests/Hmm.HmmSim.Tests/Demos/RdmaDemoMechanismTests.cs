using NUnit.Framework;

namespace Hmm.HmmSim.Tests.Demos;

/// <summary>
/// The mlx5-like NIC demos (drivers.md F.2 / F.4), each mechanism asserted through
/// <c>hmmsim run NAME --json</c> (issue 15, acceptance 1). The B.10 counter names are the sample's.
/// </summary>
public sealed class RdmaDemoMechanismTests
{
    [Test]
    public void An_rdma_write_into_an_unpinned_mr_faults_once_then_the_prefetch_window_carries_it()
    {
        var r = HmmSimProcess.RunJson("odp-rdma-write", "--pages", "64");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True, "every byte the client wrote is in the server's buffer");
            Assert.That(r.Counter("page_faults_handled"), Is.GreaterThanOrEqualTo(1).And.LessThan(64), "a few responder faults, not one per page");
            Assert.That(r.Counter("prefetch_window_pages"), Is.GreaterThan(0), "the post-resume prefetch window");
            Assert.That(r.Counter("mapped_pages"), Is.GreaterThanOrEqualTo(64));
            Assert.That(r.Counter("page_invalidations"), Is.Zero);
            Assert.That(r.GetProperty("parameters").GetProperty("policy").ValueKind, Is.EqualTo(System.Text.Json.JsonValueKind.Null), "no GPU policy");
        });
    }

    [Test]
    public void Implicit_odp_creates_a_child_per_slot_lazily_and_reaps_the_emptied_one()
    {
        var r = HmmSimProcess.RunJson("odp-implicit");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True);
            Assert.That(r.Counter("null_key_faults"), Is.EqualTo(3), "each 1 GiB slot's first access hits the null mkey");
            Assert.That(r.Counter("implicit_children_created"), Is.EqualTo(3));
            Assert.That(r.Counter("children_after_writes"), Is.EqualTo(3));
            Assert.That(r.Counter("implicit_children_reaped"), Is.EqualTo(1), "the unmapped slot's child");
            Assert.That(r.Counter("children_after_munmap"), Is.EqualTo(2));
            Assert.That(r.Counter("ksm_updates"), Is.GreaterThanOrEqualTo(3));
        });
    }

    [Test]
    public void Invalidation_zaps_marks_dirty_and_the_next_transfer_re_faults()
    {
        var r = HmmSimProcess.RunJson("odp-invalidation", "--pages", "64");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True, "second transfer verified and the write into the hole failed");
            Assert.That(r.Counter("page_invalidations"), Is.GreaterThan(0));
            Assert.That(r.Counter("zap_umrs"), Is.GreaterThan(0));
            Assert.That(r.Counter("dirty_pages"), Is.GreaterThan(0), "NIC-written pages marked dirty before the zap");
            Assert.That(r.Counter("page_faults_after_invalidation"), Is.GreaterThanOrEqualTo(16), "the dropped pages re-fault");
            Assert.That(r.Counter("write_into_unmapped_errno"), Is.EqualTo(14), "EFAULT");
        });
    }

    [Test]
    public void Prefetch_write_avoids_the_faults_that_a_read_only_prefetch_causes()
    {
        var r = HmmSimProcess.RunJson("odp-prefetch", "--pages", "64");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True);
            Assert.That(r.Counter("prefetch.page_prefetch"), Is.EqualTo(64));
            Assert.That(r.Counter("prefetch.write_faults_after_advice"), Is.GreaterThan(0), "read-only prefetch: the write faults to upgrade");
            Assert.That(r.Counter("prefetch_write.write_faults_after_advice"), Is.Zero, "PREFETCH_WRITE mapped writable");
            Assert.That(r.Counter("prefetch_write.first_transfer_ns"), Is.LessThan(r.Counter("prefetch.first_transfer_ns")));
            Assert.That(r.Counter("no_fault.page_prefetch"), Is.EqualTo(32), "NO_FAULT maps only the half the CPU touched");
        });
    }

    [Test]
    public void Rdma_into_gpu_memory_without_p2p_migrates_every_page_to_ram()
    {
        var r = HmmSimProcess.RunJson("rdma-into-gpu-fallback", "--pages", "64");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True);
            Assert.That(r.Counter("p2pBytes"), Is.Zero);
            Assert.That(r.Counter("fallbackBytes"), Is.EqualTo(64 * 4096));
            Assert.That(r.Counter("migrations"), Is.EqualTo(64), "every page migrated to RAM");
            Assert.That(r.Counter("gpu_faults_reading"), Is.EqualTo(64), "the GPU faults again to read it");
        });
    }

    [Test]
    public void Rdma_into_gpu_memory_with_p2p_lands_in_vram_and_one_refused_page_falls_back()
    {
        var r = HmmSimProcess.RunJson("rdma-into-gpu-p2p", "--pages", "64");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True);
            Assert.That(r.Counter("p2pBytes"), Is.EqualTo(63 * 4096), "MTT at the GPU's BAR for every exportable page");
            Assert.That(r.Counter("fallbackBytes"), Is.EqualTo(4096), "the refused page went through RAM");
            Assert.That(r.Counter("migrations"), Is.EqualTo(1));
            Assert.That(r.Counter("vram_pages_verified"), Is.EqualTo(63), "the NIC's bytes are in VRAM");
            Assert.That(r.Counter("gpu_faults_reading"), Is.EqualTo(1), "only the migrated page faults when the GPU reads");
        });
    }

    [Test]
    public void Evicting_or_touching_p2p_pages_revokes_the_nic_entries_and_they_re_fault_into_ram()
    {
        var r = HmmSimProcess.RunJson("p2p-revocation", "--pages", "64");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True);
            Assert.That(r.Counter("p2p_entries_before_revocation"), Is.EqualTo(64));
            Assert.That(r.Counter("revoked_pages"), Is.EqualTo(32 + 1), "the evicted half and the CPU-touched page");
            Assert.That(r.Counter("migrations"), Is.EqualTo(33));
            Assert.That(r.Counter("p2p_entries_after_refault"), Is.EqualTo(64 - 33), "the rest stays peer-to-peer");
            Assert.That(r.Counter("p2pBytes") + r.Counter("fallbackBytes"), Is.EqualTo(64 * 4096));
        });
    }

    [Test]
    public void A_second_gpu_reading_another_gpus_private_pages_migrates_them_to_ram()
    {
        var r = HmmSimProcess.RunJson("two-gpus", "--pages", "64");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True);
            Assert.That(r.Counter("gpu_a_bound_pages"), Is.EqualTo(64));
            Assert.That(r.Counter("gpu_b_faults"), Is.EqualTo(64));
            Assert.That(r.Counter("gpu_a_pages_migrated_to_ram"), Is.EqualTo(64), "a different pgmap owner: migrated, not mapped in place");
            Assert.That(r.Counter("gpu_a_vram_pages_in_use"), Is.Zero);
        });
    }

    [Test]
    public void Two_gpus_in_one_hive_map_each_others_vram_in_place_and_a_cpu_touch_unmaps_both()
    {
        var r = HmmSimProcess.RunJson("two-gpus-same-hive", "--pages", "64");
        Assert.Multiple(() =>
        {
            Assert.That(r.DataVerified(), Is.True);
            Assert.That(r.Counter("gpu_b_faults"), Is.EqualTo(64));
            Assert.That(r.Counter("gpu_a_pages_migrated_on_b_read"), Is.Zero, "one pgmap owner: mapped in place, not migrated");
            Assert.That(r.Counter("gpu_b_peer_entries"), Is.EqualTo(64));
            Assert.That(r.Counter("gpu_a_vram_pages_after_b_writes"), Is.EqualTo(64));
            Assert.That(r.Counter("gpu_a_pages_migrated_on_cpu_touch"), Is.EqualTo(1));
            Assert.That(r.Counter("gpu_b_stale_entry_after_touch"), Is.Zero);
            Assert.That(r.Counter("gpu_b_refaults_after_touch"), Is.EqualTo(1));
        });
    }

    [Test]
    public void A_seed_too_large_for_the_nic_workloads_is_refused()
    {
        var o = HmmSimProcess.Invoke("run", "odp-rdma-write", "--seed", "4294967296");
        Assert.That(o.ExitCode, Is.EqualTo(2));
        Assert.That(o.ErrorLines, Has.Length.EqualTo(1));
        Assert.That(o.Stderr, Does.Contain("--seed"));
    }

    [Test]
    public void The_policy_option_does_not_apply_to_nic_demos()
    {
        var o = HmmSimProcess.Invoke("run", "odp-implicit", "--policy", "uvm");
        Assert.That(o.ExitCode, Is.EqualTo(2));
        Assert.That(o.Stderr, Does.Contain("--policy does not apply"));
    }
}
