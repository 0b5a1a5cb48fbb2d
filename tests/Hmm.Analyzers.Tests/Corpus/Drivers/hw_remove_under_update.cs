// HMM1016: removes the notifier while still holding U during teardown
public sealed class HwRemoveUnderUpdate : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_remove_under_update.update");
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
    public void Close()
    {
        _update.Lock();
        try { _pt.Clear(0, ulong.MaxValue); }
#if FIXED
        finally { _update.Unlock(); }
        _notifier.Remove();
#else
        finally { _notifier.Remove(); _update.Unlock(); }
#endif
    }
}
