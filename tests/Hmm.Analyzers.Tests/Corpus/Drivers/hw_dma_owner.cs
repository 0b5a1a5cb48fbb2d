// HMM1034: an ODP-style driver passes its pgmap owner on a range whose pfns it DMA-maps
public sealed class HwDmaOwner : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_dma_owner.update");
    private readonly IntervalNotifier _notifier;
    private readonly HmmDmaMap _map;
    private AddressSpace _mm = null!;
    public HwDmaOwner(Iommu iommu) { _notifier = new IntervalNotifier(this); _map = new HmmDmaMap(iommu, 16); }

    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
        try { notifier.SetSeq(curSeq); return true; }
        finally { _update.Unlock(); }
    }
    public Errno Fault(ulong start)
    {
#if FIXED
        var range = new HmmRange(_notifier, start, start + 16 * 4096) { HmmPfns = _map.Pfns, DefaultFlags = HmmPfn.ReqFault };
#else
        var range = new HmmRange(_notifier, start, start + 16 * 4096) { HmmPfns = _map.Pfns, DefaultFlags = HmmPfn.ReqFault, DevPrivateOwner = this };
#endif
        range.NotifierSeq = _notifier.ReadBegin();
        _mm.MmapLock.ReadLock();
        try { return range.Fault(); }
        finally { _mm.MmapLock.ReadUnlock(); }
    }
    public void Release() => _notifier.Remove();
}
