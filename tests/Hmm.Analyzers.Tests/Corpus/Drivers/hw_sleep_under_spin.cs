// HMM1024: waits for U while holding the fault-buffer spinlock
public sealed class HwSleepUnderSpin : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_sleep_under_spin.update");
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
    private readonly SpinLock _buffer = new("buffer");
    public void Drain()
    {
#if FIXED
        _buffer.Lock();
        _buffer.Unlock();
        _update.Lock();
        _update.Unlock();
#else
        _buffer.Lock();
        try { _update.Lock(); _update.Unlock(); }
        finally { _buffer.Unlock(); }
#endif
    }
}
