// HMM1025: a NIC maps a page for DMA and forgets to unmap it when the work request is rejected
public sealed class HwDmaUnmapLeak
{
    private Iommu _iommu = null!;
    private readonly ulong[] _ring = new ulong[64];
    private int _head;

    /// <summary>Posts one page to the send ring; the ring entry owns the mapping until completion.</summary>
    public Errno PostSend(ulong pfn, int length)
    {
        if (!_iommu.TryDmaMap(pfn, 1, false, out ulong bus)) return Errno.ENOMEM;
#if FIXED
        if (length > 4096 || _head == _ring.Length) { _iommu.DmaUnmap(bus, 1); return Errno.EINVAL; }
#else
        if (length > 4096 || _head == _ring.Length) return Errno.EINVAL;
#endif
        Enqueue(bus);
        return Errno.Ok;
    }

    private void Enqueue(ulong bus) => _ring[_head++] = bus;

    /// <summary>Completion: the entry's mapping goes away.</summary>
    public void Complete(int slot)
    {
        _iommu.DmaUnmap(_ring[slot], 1);
        _ring[slot] = 0;
    }
}
