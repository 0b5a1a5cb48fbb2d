// HMM1019: skips invalidations by owner without checking the event
public sealed class HwOwnerNoEvent : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_owner_no_event.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
#if FIXED
        bool own = range.Event == NotifyEvent.Exclusive && range.Owner == this;
#else
        bool own = range.Owner == this;
#endif
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
        try { notifier.SetSeq(curSeq); if (!own) _pt.Clear(range.Start, range.End); return true; }
        finally { _update.Unlock(); }
    }
}
