// HMM1014: refuses the invalidation whenever the device is busy, blockable or not
public sealed class HwInvalidateBusy : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_invalidate_busy.update");
    private readonly DevicePageTable _pt = new();
    private bool _busy;
    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
#if FIXED
        if (_busy && !range.Blockable) return false;
#else
        if (_busy) return false;
#endif
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
        try { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); return true; }
        finally { _update.Unlock(); }
    }
}
