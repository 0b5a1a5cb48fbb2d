// HMM1035: the constructor inserts the notifier before allocating the shadow table its invalidate clears
public sealed class HwShadowAfterInsert : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_shadow_after_insert.update");
    private readonly IntervalNotifier _notifier;
    private DevicePageTable _shadow;

    public HwShadowAfterInsert(AddressSpace mm, ulong start, ulong length)
    {
        _notifier = new IntervalNotifier(this);
#if FIXED
        _shadow = new DevicePageTable();
        if (_notifier.Insert(mm, start, length) != Errno.Ok) throw new InvalidOperationException("insert");
#else
        if (_notifier.Insert(mm, start, length) != Errno.Ok) throw new InvalidOperationException("insert");
        _shadow = new DevicePageTable();
#endif
    }

    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
        try { notifier.SetSeq(curSeq); Unmap(range.Start, range.End); return true; }
        finally { _update.Unlock(); }
    }

    private void Unmap(ulong start, ulong end) => _shadow.Clear(start, end);

    public void Close()
    {
        _notifier.Remove();
        _shadow = null!;
    }
}
