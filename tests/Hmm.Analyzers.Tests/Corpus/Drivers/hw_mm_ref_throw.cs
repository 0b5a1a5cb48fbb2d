// HMM1023: throws on a bad command while holding the mm reference
public sealed class HwMmRefThrow : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_mm_ref_throw.update");
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
    public void Command(ulong addr)
    {
        if (!_mm.TryGet()) return;
#if FIXED
        try { if (addr == 0) throw new ArgumentException("addr"); }
        finally { _mm.Put(); }
#else
        if (addr == 0) throw new ArgumentException("addr");
        _mm.Put();
#endif
    }
}
