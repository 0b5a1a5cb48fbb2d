// HMM1014: try-locks U and refuses on contention even for blockable ranges
public sealed class HwTrylockAlways : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_trylock_always.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
#if FIXED
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
#else
        if (!_update.TryLock()) return false;
#endif
        try { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); return true; }
        finally { _update.Unlock(); }
    }
}
