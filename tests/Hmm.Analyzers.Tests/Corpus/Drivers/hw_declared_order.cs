// HMM1006: takes U before the page-table lock declared to come after it
public sealed class HwDeclaredOrder : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_declared_order.update");
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
    [AcquiredAfter(nameof(_update))] private readonly KernelMutex _table = new("table");
    public void Grow()
    {
#if FIXED
        _update.Lock();
        try { _table.Lock(); _table.Unlock(); } finally { _update.Unlock(); }
#else
        _table.Lock();
        try { _update.Lock(); _update.Unlock(); } finally { _table.Unlock(); }
#endif
    }
}
