// HMM1031: inserts its interval notifier on bind but its release path forgets to remove it
public sealed class HwNotifierLeak : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_notifier_leak.update");
    private readonly IntervalNotifier _notifier;
    private readonly DevicePageTable _pt = new();
    public HwNotifierLeak() => _notifier = new IntervalNotifier(this);

    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
        try { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); return true; }
        finally { _update.Unlock(); }
    }
    public Errno Bind(AddressSpace mm, ulong start, ulong length) => _notifier.Insert(mm, start, length);
    public void Release()
    {
#if FIXED
        _notifier.Remove();
#endif
        _update.Lock();
        try { _pt.Clear(0, ulong.MaxValue); }
        finally { _update.Unlock(); }
    }
}
