// HMM1025: a posted send maps the payload for DMA and keeps the mapping in the ring, but returns early when the ring is full and leaks it
public sealed class HwDmaRingEarlyReturn
{
    private Iommu _iommu = null!;
    private readonly ulong[] _ring = new ulong[8];
    private int _tail;
    private long _posted;

    /// <summary>Posts one page: map it, hand the bus address to the ring (the completion path unmaps it).</summary>
    public Errno Post(ulong pfn)
    {
        if (!_iommu.TryDmaMap(pfn, 1, false, out ulong bus)) return Errno.ENOMEM;
#if FIXED
        if (_tail == _ring.Length) { _iommu.DmaUnmap(bus, 1); return Errno.EBUSY; }
#else
        if (_tail == _ring.Length) return Errno.EBUSY;
#endif
        _ring[_tail++] = bus;
        _posted++;
        return Errno.Ok;
    }

    /// <summary>Completion: the device consumed the ring; unmap every posted page.</summary>
    public void Complete()
    {
        for (int i = 0; i < _tail; i++) _iommu.DmaUnmap(_ring[i], 1);
        _tail = 0;
    }
}
