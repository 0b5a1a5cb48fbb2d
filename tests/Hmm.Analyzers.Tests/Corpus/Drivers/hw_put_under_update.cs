// HMM1017: drops the mm reference while holding U
public sealed class HwPutUnderUpdate : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_put_under_update.update");
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
    public void Unbind()
    {
        if (!_mm.TryGet()) return;
        _update.Lock();
        try { _pt.Clear(0, ulong.MaxValue); }
#if FIXED
        finally { _update.Unlock(); _mm.Put(); }
#else
        finally { _mm.Put(); _update.Unlock(); }
#endif
    }
}
