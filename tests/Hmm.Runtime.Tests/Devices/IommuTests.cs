using Hmm.Runtime.Tests.Support;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mirror;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Devices;

/// <summary>Per-device DMA mapping and IOMMU isolation (kernel-hmm.md B.5, G.1; drivers.md B.6–B.7).</summary>
public class IommuTests
{
    /// <summary>G.1 (IOMMU on): a mapped page is translated, through an IOVA that is not the physical address.</summary>
    [Test]
    public void On_MappedAccess_Translated()
    {
        var iommu = new Iommu("gpu0", enabled: true);
        ulong bus = iommu.DmaMap(0x123, 2, write: true);
        Assert.That(bus, Is.Not.EqualTo(0x123UL << Page.Shift));
        Assert.That(bus, Is.GreaterThanOrEqualTo(Iommu.DefaultIovaBase));
        Assert.That(iommu.Translate(bus + 0x10, write: true, out ulong pfn) && pfn == 0x123, Is.True);
        Assert.That(iommu.Translate(bus + Page.Size, write: false, out pfn) && pfn == 0x124, Is.True);
        Assert.That(iommu.MappedPages, Is.EqualTo(2));
        Assert.That(iommu.FaultCount, Is.Zero);
    }

    /// <summary>G.1 isolation: a stray access (unmapped IOVA, or the physical address of someone's page) is refused and recorded, never served.</summary>
    [Test]
    public void On_StrayAccess_RecordedAndRefused()
    {
        var iommu = new Iommu("nic0", enabled: true);
        ulong bus = iommu.DmaMap(0x123, 1, write: false);
        Assert.That(iommu.Translate(0x123UL << Page.Shift, write: false, out _), Is.False, "physical address is not reachable");
        Assert.That(iommu.Translate(bus + Page.Size, write: true, out _), Is.False, "next IOVA page is not mapped");
        Assert.That(iommu.Translate(bus, write: true, out _), Is.False, "DMA_TO_DEVICE mapping is read-only");
        Assert.That(iommu.FaultCount, Is.EqualTo(3));
        var faults = new IommuFault[4];
        Assert.That(iommu.ReadFaults(faults), Is.EqualTo(3));
        Assert.That(faults[0], Is.EqualTo(new IommuFault("nic0", 0x123UL << Page.Shift, false, IommuFaultReason.NotMapped)));
        Assert.That(faults[1], Is.EqualTo(new IommuFault("nic0", bus + Page.Size, true, IommuFaultReason.NotMapped)));
        Assert.That(faults[2], Is.EqualTo(new IommuFault("nic0", bus, true, IommuFaultReason.ReadOnly)));
    }

    /// <summary>B.6: after the driver's unmap the device loses the page; unmapping twice is a driver bug.</summary>
    [Test]
    public void On_UnmapTwice_KernelBug()
    {
        var iommu = new Iommu("gpu0", enabled: true);
        ulong bus = iommu.DmaMap(0x50, 1, write: true);
        iommu.DmaUnmap(bus, 1);
        Assert.That(iommu.Translate(bus, write: false, out _), Is.False);
        Assert.That(iommu.MappedPages, Is.Zero);
        var ex = Assert.Throws<KernelBugException>(() => iommu.DmaUnmap(bus, 1));
        Assert.That(ex!.Rule, Is.EqualTo("DMA-R01"));
        Assert.Throws<KernelBugException>(() => iommu.DmaUnmap(0x50UL << Page.Shift, 1), "a physical address is not an IOVA");
    }

    /// <summary>IOVA space is finite: exhaustion gives DMA_MAPPING_ERROR; freed IOVA is reused.</summary>
    [Test]
    public void On_IovaExhaustion_MappingError_ThenReuse()
    {
        var iommu = new Iommu("gpu0", enabled: true, iovaPages: 64);
        ulong big = iommu.DmaMap(0x1000, 60, write: true);
        Assert.That(big, Is.Not.EqualTo(Iommu.MappingError));
        Assert.That(iommu.DmaMap(0x2000, 8, write: true), Is.EqualTo(Iommu.MappingError));
        ulong small = iommu.DmaMap(0x2000, 4, write: true);
        Assert.That(small, Is.Not.EqualTo(Iommu.MappingError));
        iommu.DmaUnmap(big, 60);
        Assert.That(iommu.DmaMap(0x3000, 8, write: true), Is.Not.EqualTo(Iommu.MappingError));
    }

    /// <summary>G.1 (IOMMU off, dma-direct): bus address = physical address, and everything is reachable — the isolation loss.</summary>
    [Test]
    public void Off_BusIsPhysical_EverythingReachable()
    {
        var iommu = new Iommu("gpu0", enabled: false);
        ulong bus = iommu.DmaMap(0x123, 1, write: false);
        Assert.That(bus, Is.EqualTo(0x123UL << Page.Shift));
        Assert.That(iommu.Translate(0x999UL << Page.Shift, write: true, out ulong pfn) && pfn == 0x999, Is.True, "unmapped RAM is reachable");
        Assert.That(iommu.FaultCount, Is.Zero);
        iommu.DmaUnmap(bus, 1);
        Assert.Throws<KernelBugException>(() => iommu.DmaUnmap(bus, 1), "dma-debug still catches a double unmap");
    }

    /// <summary>B.5 hmm_dma_map_pfn: maps and sets DMA_MAPPED; an already-tagged entry (permission resync) returns the same address without a new mapping.</summary>
    [Test]
    public void HmmDmaMap_StickyBit_SkipsAlreadyMapped()
    {
        var iommu = new Iommu("nic0", enabled: true);
        var map = new HmmDmaMap(iommu, 4);
        map.Pfns[0] = HmmPfn.Make(0x77, write: false);
        ulong bus = map.MapPfn(0);
        Assert.That((map.Pfns[0] & HmmPfn.DmaMapped) != 0, Is.True);
        Assert.That(iommu.Translate(bus, write: true, out ulong pfn) && pfn == 0x77, Is.True, "mapped bidirectional");

        // hmm_range_fault preserves the sticky bit and upgrades to WRITE: no new mapping
        map.Pfns[0] = HmmPfn.Make(0x77, write: true) | (map.Pfns[0] & HmmPfn.InOutFlags);
        Assert.That(map.MapPfn(0), Is.EqualTo(bus));
        Assert.That(iommu.MappedPages, Is.EqualTo(1));
        Assert.That(map.MapPfn(1), Is.EqualTo(Iommu.MappingError), "non-VALID entry");
    }

    /// <summary>B.5 hmm_dma_unmap_pfn: false unless VALID|DMA_MAPPED; clears the three sticky bits.</summary>
    [Test]
    public void HmmDmaMap_Unmap_ClearsStickyBits()
    {
        var iommu = new Iommu("nic0", enabled: false);
        var map = new HmmDmaMap(iommu, 2);
        map.Pfns[0] = HmmPfn.Make(0x77, write: true);
        Assert.That(map.MapPfn(0), Is.EqualTo(0x77UL << Page.Shift));
        map.Pfns[0] |= HmmPfn.P2PDma;
        Assert.That(map.UnmapPfn(0), Is.True);
        Assert.That(map.Pfns[0] & HmmPfn.InOutFlags, Is.Zero);
        Assert.That(map.Pfns[0], Is.EqualTo(HmmPfn.Make(0x77, write: true)));
        Assert.That(map.UnmapPfn(0), Is.False);
        Assert.That(map.UnmapPfn(1), Is.False);
        Assert.That(iommu.MappedPages, Is.Zero);
        Assert.That(map.MappedCount, Is.Zero);
    }

    /// <summary>ARCHITECTURE §8: map/translate/unmap allocate nothing once the page-table chunks exist.</summary>
    [Test]
    public void HotPath_AllocatesNothingAfterWarmUp()
    {
        var iommu = new Iommu("gpu0", enabled: true, iovaPages: 1024);
        var map = new HmmDmaMap(iommu, 64);
        for (int i = 0; i < 64; i++) map.Pfns[i] = HmmPfn.Make((ulong)(0x100 + i), write: true);
        void Cycle()
        {
            for (int i = 0; i < 64; i++) iommu.Translate(map.MapPfn(i), write: true, out _);
            for (int i = 0; i < 64; i++) map.UnmapPfn(i);
        }
        Assert.That(Allocations.Measure(Cycle, iterations: 50), Is.Zero);   // warm-up touches every IOVA chunk
    }
}
