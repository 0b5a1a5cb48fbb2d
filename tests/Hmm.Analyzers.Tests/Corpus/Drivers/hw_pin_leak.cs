// HMM1025: leaks the pinned pages when the DMA mapping fails
public sealed class HwPinLeak : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_pin_leak.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();

    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
        try { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); return true; }
        finally { _update.Unlock(); }
    }
    private readonly Iommu _iommu = new("dev", enabled: true);
    public ulong Map(Process p, ulong addr)
    {
#if FIXED
        using var pins = p.PinUserPages(addr, 1, write: true, longTerm: false);
        return _iommu.DmaMap(pins.Pfns[0], 1, true);
#else
        var pins = p.PinUserPages(addr, 1, write: true, longTerm: false);
        ulong bus = _iommu.DmaMap(pins.Pfns[0], 1, true);
        if (bus == Iommu.MappingError) return bus;
        pins.Dispose();
        return bus;
#endif
    }
}
