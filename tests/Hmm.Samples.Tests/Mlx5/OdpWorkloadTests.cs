using Hmm.Runtime;
using Hmm.Samples.Mlx5;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Mlx5;

/// <summary>
/// Issue 14, acceptance 1 (F.2): every mlx5 ODP workload asserted through its B.10 counters and its
/// end-to-end bytes. Each workload verifies every byte it reads and checks the machine's invariants
/// on teardown (<see cref="Mlx5Testbed.Finish"/>).
/// </summary>
public sealed class OdpWorkloadTests
{
    // F.2.1: one packet fault, then the 4 MiB post-resume window maps the rest of the 1024-page MR.
    [Test]
    public void RdmaWrite_FaultsOnePacket_ThenThePrefetchWindow_AndWritesEveryByte()
    {
        var r = OdpWorkloads.RdmaWrite(pages: 256, seed: 7);
        Assert.That(r.DataVerified, Is.True);
        Assert.That(r.Counters["page_faults_handled"], Is.EqualTo(2), "the packet fault and the prefetch after the resume");
        Assert.That(r.Counters["prefetch_window_pages"], Is.EqualTo(1023), "4 MiB window minus the packet");
        Assert.That(r.Counters["page_faults"], Is.EqualTo(1024));
        Assert.That(r.Counters["requester_page_faults"], Is.Zero, "the registration snapshot mapped the CPU-written source");
        Assert.That(r.Counters["page_invalidations"], Is.Zero);
        Assert.That(r.Counters["stale_translations"], Is.Zero);
        Assert.That(r.SimulatedTimeNs, Is.GreaterThan(0));
        Assert.That(r.Migrations, Is.Zero);
    }

    // B.4 memory-scheme faults: demand + prefetch-after in one fault.
    [Test]
    public void RdmaWrite_OnAMemorySchemeNic_MapsDemandAndPrefetchAfterInOneFault()
    {
        var r = OdpWorkloads.RdmaWriteMemoryScheme(pages: 256, seed: 8);
        Assert.That(r.DataVerified, Is.True);
        Assert.That(r.Name, Is.EqualTo("odp-rdma-write-memory-scheme"));
        Assert.That(r.Counters["page_faults_handled"], Is.EqualTo(1));
        Assert.That(r.Counters["page_faults"], Is.EqualTo(1024), "the demanded page and the window after it, clipped to the MR");
        Assert.That(r.Counters["prefetch_window_pages"], Is.Zero, "no separate post-resume prefetch");
    }

    // F.2.2: three slots, three lazily created children (null-key faults, KSM updates); one reaped.
    [Test]
    public void ImplicitOdp_CreatesAChildPerSlotLazily_AndReapsTheEmptiedOne()
    {
        var r = OdpWorkloads.ImplicitOdp(pages: 64, seed: 3);
        Assert.That(r.DataVerified, Is.True);
        Assert.That(r.Counters["implicit_children_created"], Is.EqualTo(3));
        Assert.That(r.Counters["null_key_faults"], Is.EqualTo(3));
        Assert.That(r.Counters["children_after_writes"], Is.EqualTo(3));
        Assert.That(r.Counters["children_after_munmap"], Is.EqualTo(2));
        Assert.That(r.Counters["implicit_children_reaped"], Is.EqualTo(1));
        Assert.That(r.Counters["ksm_updates"], Is.EqualTo(4), "three links and one unlink");
        Assert.That(r.Counters["ksm_entries"], Is.EqualTo(131_072), "TASK_SIZE / 1 GiB for a 47-bit user space");
    }

    // F.2.3: two single-page zaps, one 16-entry zap flushed at the 8 boundary (14 valid), 8 unmapped.
    [Test]
    public void Invalidation_ZapsIn8AlignedRuns_MarksDirty_AndRefaults()
    {
        var r = OdpWorkloads.Invalidation(pages: 64, seed: 5);
        Assert.That(r.DataVerified, Is.True);
        Assert.That(r.Counters["zap_umrs"], Is.EqualTo(4));
        Assert.That(r.Counters["zapped_entries"], Is.EqualTo(1 + 1 + 16 + 8), "the 16-entry run covers the two already-empty entries");
        Assert.That(r.Counters["page_invalidations"], Is.EqualTo(1 + 1 + 14 + 8));
        Assert.That(r.Counters["page_invalidations_handled"], Is.EqualTo(4));
        Assert.That(r.Counters["dirty_pages"], Is.EqualTo(24), "every zapped page was NIC-writable");
        Assert.That(r.Counters["page_faults_after_invalidation"], Is.GreaterThanOrEqualTo(16), "the DONTNEED pages re-faulted");
        Assert.That(r.Counters["write_into_unmapped_errno"], Is.EqualTo((long)Errno.EFAULT));
        Assert.That(r.Counters["resumes_with_error"], Is.EqualTo(1));
    }

    // F.2.4: PREFETCH downgrades (write faults later), PREFETCH_WRITE does not, NO_FAULT maps the present half.
    [Test]
    public void Prefetch_DowngradeCausesWriteFaults_PrefetchWriteNone_NoFaultOnlyPresentPages()
    {
        var r = OdpWorkloads.Prefetch(pages: 64, seed: 9);
        Assert.That(r.DataVerified, Is.True);
        Assert.That(r.Counters["prefetch.page_prefetch"], Is.EqualTo(64));
        Assert.That(r.Counters["prefetch.write_faults_after_advice"], Is.GreaterThan(0), "read-only entries fault on the write");
        Assert.That(r.Counters["prefetch_write.page_prefetch"], Is.EqualTo(64));
        Assert.That(r.Counters["prefetch_write.write_faults_after_advice"], Is.Zero);
        Assert.That(r.Counters.ContainsKey("prefetch_write.page_faults"), Is.True);
        Assert.That(r.Counters["prefetch_write.page_faults"], Is.Zero);
        Assert.That(r.Counters["no_fault.page_prefetch"], Is.EqualTo(32), "only the pages the CPU touched");
        Assert.That(r.Counters["no_fault.write_faults_after_advice"], Is.GreaterThan(0));
        Assert.That(r.Counters["prefetch_write.first_transfer_ns"], Is.LessThan(r.Counters["prefetch.first_transfer_ns"]));
        Assert.That(r.Counters["prefetch_write.first_transfer_ns"], Is.LessThan(r.Counters["no_fault.first_transfer_ns"]));
    }

    // F.2.6: dereg sleeps until the four in-flight faults drain; nothing they wrote is lost.
    [Test]
    public void DeregUnderLoad_BlocksUntilInFlightFaultsDrain_AndLosesNothing()
    {
        var r = OdpWorkloads.DeregUnderLoad(pages: 64, seed: 11);
        Assert.That(r.DataVerified, Is.True);
        Assert.That(r.Counters["faults_in_flight_at_dereg"], Is.EqualTo(4));
        Assert.That(r.Counters["use_count_at_dereg"], Is.GreaterThan(4), "the registration's reference plus every in-flight user");
        Assert.That(r.Counters["dereg_blocked"], Is.EqualTo(1));
        Assert.That(r.Counters["write_after_dereg_errno"], Is.EqualTo((long)Errno.EACCES), "the rkey is gone");
    }

    // F.2.7: MADV_COLLAPSE migrates the pages into a THP; the MTT is zapped and the next transfer maps the new frames.
    [Test]
    public void PageMigration_ZapsTheMtt_AndTheNextFaultMapsTheNewPages()
    {
        var r = OdpWorkloads.PageMigration(pages: 512, seed: 13);
        Assert.That(r.DataVerified, Is.True);
        Assert.That(r.Counters["snapshot_mapped_pages"], Is.EqualTo(512), "registration snapshot of the CPU-written pages");
        Assert.That(r.Counters["page_faults_before_migration"], Is.Zero);
        Assert.That(r.Counters["pfn_changed"], Is.EqualTo(1));
        Assert.That(r.Counters["huge_after_migration"], Is.EqualTo(1));
        Assert.That(r.Counters["mapped_after_migration"], Is.Zero);
        Assert.That(r.Counters["page_invalidations"], Is.EqualTo(512));
        Assert.That(r.Counters["page_faults"], Is.EqualTo(512), "re-mapped on the next fault");
        Assert.That(r.Counters["stale_translations"], Is.Zero);
    }
}
