// HMM1013: takes U with a sleeping lock in every invalidation
public sealed class HwUnconditionalLock : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_unconditional_lock.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
#if FIXED
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
#else
        _update.Lock();
#endif
        try { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); return true; }
        finally { _update.Unlock(); }
    }
}
