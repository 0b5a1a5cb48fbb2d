// HMM1021: migrates device pages back from the invalidate callback
public sealed class HwEvictInInvalidate : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_evict_in_invalidate.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    private DevPagemap _pgmap = null!;
    private bool _pending;
    private void EvictAll() => MigrateDevice.EvictAndRemove(_pgmap);
    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (!range.Blockable) return false;
        _update.Lock();
        try { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); }
        finally { _update.Unlock(); }
#if FIXED
        if (range.Event == NotifyEvent.Release) _pending = true;
#else
        if (range.Event == NotifyEvent.Release) EvictAll();
#endif
        return true;
    }
    public void Work() { if (_pending) EvictAll(); }
}
