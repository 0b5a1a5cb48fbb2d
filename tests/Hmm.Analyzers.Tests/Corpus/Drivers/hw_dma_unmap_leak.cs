// HMM1025: an inline send maps the payload page for DMA and leaks the mapping when the device is busy
public sealed class HwDmaUnmapLeak
{
    private Iommu _iommu = null!;
    private CopyEngine _dma = null!;
    private bool _busy;
    private long _sent;

    /// <summary>Sends one page synchronously: map, let the device read it, unmap.</summary>
    public Errno SendInline(ulong pfn, ulong devicePfn)
    {
        if (!_iommu.TryDmaMap(pfn, 1, false, out ulong bus)) return Errno.ENOMEM;
#if FIXED
        if (_busy) { _iommu.DmaUnmap(bus, 1); return Errno.EBUSY; }
#else
        if (_busy) return Errno.EBUSY;
#endif
        if (_iommu.Translate(bus, write: false, out ulong seen) && seen == pfn) _dma.Copy([new PageCopy(pfn, devicePfn)]);
        _sent++;
        _iommu.DmaUnmap(bus, 1);
        return Errno.Ok;
    }
}
