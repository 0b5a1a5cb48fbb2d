using Hmm.Runtime.Devices;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Devices;

/// <summary>dma_map_page + dma_mapping_error folded into one call (the form the analyzers pair with DmaUnmap).</summary>
public class IommuTryMapTests
{
    [Test]
    public void TryDmaMap_maps_until_iova_space_runs_out_and_unmap_returns_it()
    {
        var iommu = new Iommu("gpu0", enabled: true, iovaPages: 64);
        Assert.That(iommu.TryDmaMap(0x1000, 60, write: true, out ulong big), Is.True);
        Assert.That(iommu.Translate(big, write: true, out ulong pfn) && pfn == 0x1000, Is.True);
        Assert.That(iommu.TryDmaMap(0x2000, 8, write: true, out ulong none), Is.False, "only 4 IOVA pages left");
        Assert.That(none, Is.Zero, "a failed map hands out no address");
        Assert.That(iommu.MappedPages, Is.EqualTo(60));
        iommu.DmaUnmap(big, 60);
        Assert.That(iommu.MappedPages, Is.Zero);
        Assert.That(iommu.TryDmaMap(0x2000, 8, write: false, out ulong again), Is.True);
        Assert.That(iommu.Translate(again, write: true, out _), Is.False, "mapped DMA_TO_DEVICE: the device may not write");
        iommu.DmaUnmap(again, 8);
    }

    [Test]
    public void TryDmaMap_without_iommu_is_dma_direct()
    {
        var iommu = new Iommu("nic0", enabled: false);
        Assert.That(iommu.TryDmaMap(0x123, 1, write: true, out ulong bus), Is.True);
        Assert.That(bus, Is.EqualTo(0x123UL << 12));
        iommu.DmaUnmap(bus, 1);
        Assert.That(iommu.MappedPages, Is.Zero);
    }
}
