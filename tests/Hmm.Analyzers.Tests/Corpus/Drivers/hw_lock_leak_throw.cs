// HMM1004: throws on a full queue with the queue lock held
public sealed class HwLockLeakThrow : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_lock_leak_throw.update");
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
    private readonly SpinLock _queue = new("queue");
    private int _depth;
    public void Push()
    {
        _queue.Lock();
#if FIXED
        try { if (_depth == 64) throw new InvalidOperationException("full"); _depth++; }
        finally { _queue.Unlock(); }
#else
        if (_depth == 64) throw new InvalidOperationException("full");
        _depth++;
        _queue.Unlock();
#endif
    }
}
