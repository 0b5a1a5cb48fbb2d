// HMM1002: calls a [Requires(U)] table helper without U
public sealed class HwRequiresHelper : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_requires_helper.update");
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
    [Requires(nameof(_update))] private void Zap(ulong start, ulong end) => _pt.Clear(start, end);
    public void Trim(ulong start, ulong end)
    {
#if FIXED
        _update.Lock();
        try { Zap(start, end); } finally { _update.Unlock(); }
#else
        Zap(start, end);
#endif
    }
}
