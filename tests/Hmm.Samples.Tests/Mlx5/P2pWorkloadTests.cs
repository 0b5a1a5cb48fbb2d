using Hmm.Runtime;
using Hmm.Runtime.Memory;
using Hmm.Samples.Mlx5;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Mlx5;

/// <summary>Issue 14, acceptance 1 (F.4): RDMA into GPU memory, p2p and fallback, revocation, two GPUs.</summary>
public sealed class P2pWorkloadTests
{
    private const int Pages = 64;

    // F.4.1 + F.4.3 (mainline): migrations == pages touched; the GPU faults to read the data back.
    [Test]
    public void Fallback_MigratesEveryTouchedPage_AndTheGpuFaultsToReadIt()
    {
        var r = P2pWorkloads.RdmaIntoGpuFallback(Pages, seed: 21);
        Assert.That(r.DataVerified, Is.True);
        Assert.That(r.Counters["gpu_bound_pages"], Is.EqualTo(Pages));
        Assert.That(r.Migrations, Is.EqualTo(Pages), "one migrate_to_ram per page the NIC touched");
        Assert.That(r.P2pBytes, Is.Zero);
        Assert.That(r.FallbackBytes, Is.EqualTo((long)Pages * Page.Size));
        Assert.That(r.Counters["gpu_faults_reading"], Is.EqualTo(Pages), "the GPU PTEs were cleared by the migration");
        Assert.That(r.Counters.ContainsKey("enable_p2p_errno"), Is.False);
    }

    // F.4.2 + F.4.3: zero migrations except the refused page; NIC bytes in VRAM; the GPU reads without faulting.
    [Test]
    public void P2p_WritesVramThroughTheBar_OneRefusedPageFallsBack_GpuReadsWithoutFaulting()
    {
        var r = P2pWorkloads.RdmaIntoGpuP2p(Pages, seed: 22);
        Assert.That(r.DataVerified, Is.True);
        Assert.That(r.Counters["export_errno"], Is.EqualTo((long)Errno.Ok));
        Assert.That(r.Counters["enable_p2p_errno"], Is.EqualTo((long)Errno.Ok));
        Assert.That(r.P2pBytes, Is.EqualTo((long)(Pages - 1) * Page.Size));
        Assert.That(r.FallbackBytes, Is.EqualTo(Page.Size));
        Assert.That(r.Migrations, Is.EqualTo(1), "only the page the GPU would not export");
        Assert.That(r.Counters["fallback_pages"], Is.EqualTo(1));
        Assert.That(r.Counters["vram_pages_verified"], Is.EqualTo(Pages - 1), "the NIC's bytes sit in VRAM");
        Assert.That(r.Counters["gpu_faults_reading"], Is.EqualTo(1), "only the migrated page faults on the GPU");
        Assert.That(r.Counters["cpu_read_revocations"], Is.EqualTo(Pages - 1), "a CPU touch migrates and revokes each p2p entry");
    }

    // A fully p2p run: zero migrations.
    [Test]
    public void P2p_WithEveryPageReachable_MigratesNothing()
    {
        var r = P2pWorkloads.RdmaIntoGpu(Pages, seed: 23, new GpuRdmaOptions { UnreachablePages = 0 });
        Assert.That(r.DataVerified, Is.True);
        Assert.That(r.Migrations, Is.Zero);
        Assert.That(r.P2pBytes, Is.EqualTo((long)Pages * Page.Size));
        Assert.That(r.Counters["gpu_faults_reading"], Is.Zero);
    }

    // A host bridge in the way: P2pDma.Distance says no, the NIC stays in migrate-back mode.
    [Test]
    public void P2p_BehindANonWhitelistedHostBridge_FallsBackForEveryPage()
    {
        var r = P2pWorkloads.RdmaIntoGpu(Pages, seed: 24, new GpuRdmaOptions { Path = PeerPath.HostBridgeInTheWay });
        Assert.That(r.DataVerified, Is.True);
        Assert.That(r.Counters["enable_p2p_errno"], Is.EqualTo((long)Errno.EOPNOTSUPP));
        Assert.That(r.Migrations, Is.EqualTo(Pages));
        Assert.That(r.P2pBytes, Is.Zero);
    }

    // Exporter-side invalidation (eviction, CPU touch) revokes the NIC's BAR entries; the next access re-faults.
    [Test]
    public void Revocation_ByEvictionOrCpuTouch_MakesTheNicRefault()
    {
        var r = P2pWorkloads.P2pRevocation(Pages, seed: 25);
        Assert.That(r.DataVerified, Is.True);
        Assert.That(r.Counters["p2p_entries_before_revocation"], Is.EqualTo(Pages));
        Assert.That(r.Counters["revoked_pages"], Is.EqualTo(Pages / 2 + 1), "half evicted, one touched by the CPU");
        Assert.That(r.Counters["refaulted_pages"], Is.GreaterThanOrEqualTo(Pages / 2 + 1));
        Assert.That(r.Counters["p2p_entries_after_refault"], Is.EqualTo(Pages / 2 - 1));
        Assert.That(r.Migrations, Is.EqualTo(Pages / 2 + 1));
    }

    // F.4.4: GPU B faulting on GPU A's private pages migrates them to RAM (different owner).
    [Test]
    public void TwoGpus_PagesPrivateToTheOtherGpuMigrateToRam()
    {
        var r = P2pWorkloads.TwoGpus(Pages, seed: 26);
        Assert.That(r.DataVerified, Is.True);
        Assert.That(r.Counters["gpu_a_bound_pages"], Is.EqualTo(Pages));
        Assert.That(r.Migrations, Is.EqualTo(Pages));
        Assert.That(r.Counters["gpu_b_faults"], Is.EqualTo(Pages));
        Assert.That(r.Counters["gpu_a_vram_pages_in_use"], Is.Zero);
    }

    // F.4.4, same-hive variant: shared pgmap owner → B maps A's VRAM in place (no migration), B's
    // writes land in A's VRAM, and a CPU touch migrates one page and unmaps it from B too (no stale PTE).
    [Test]
    public void TwoGpusSameHive_MapsThePeersVramInPlace_AndACpuTouchUnmapsItFromBoth()
    {
        var r = P2pWorkloads.TwoGpusSameHive(Pages, seed: 27);
        Assert.That(r.DataVerified, Is.True, "B read A's bytes, A read B's writes, CPU read everything back (invariants checked)");
        Assert.That(r.Counters["gpu_a_bound_pages"], Is.EqualTo(Pages));
        Assert.That(r.Counters["gpu_b_faults"], Is.EqualTo(Pages), "B faults once per page to map it");
        Assert.That(r.Counters["gpu_a_pages_migrated_on_b_read"], Is.Zero, "same owner: hmm_range_fault returns A's private pfns");
        Assert.That(r.Counters["gpu_b_peer_entries"], Is.EqualTo(Pages), "every page mapped as a peer-VRAM PTE");
        Assert.That(r.Counters["gpu_b_write_faults"], Is.Zero, "the peer PTEs are writable");
        Assert.That(r.Counters["gpu_a_read_faults"], Is.Zero, "A reads its own VRAM");
        Assert.That(r.Counters["gpu_a_vram_pages_after_b_writes"], Is.EqualTo(Pages), "B's writes did not move anything out of VRAM");
        Assert.That(r.Counters["gpu_a_pages_migrated_before_touch"], Is.Zero);
        Assert.That(r.Counters["gpu_a_pages_migrated_on_cpu_touch"], Is.EqualTo(1));
        Assert.That(r.Counters["hive_peer_unmaps_on_cpu_touch"], Is.EqualTo(1), "A's migrate_to_ram unmapped the page from B");
        Assert.That(r.Counters["gpu_b_stale_entry_after_touch"], Is.Zero);
        Assert.That(r.Counters["gpu_b_refaults_after_touch"], Is.EqualTo(1), "only the migrated page re-faults");
        Assert.That(r.Migrations, Is.EqualTo(1), "the CPU-touched page only (the read-back check is not counted)");
        Assert.That(r.P2pBytes, Is.EqualTo((long)Pages * Page.Size));
        Assert.That(r.FallbackBytes, Is.Zero);
    }
}
