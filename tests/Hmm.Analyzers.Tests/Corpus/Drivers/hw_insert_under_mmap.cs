// HMM1003: registers a notifier while holding the mmap lock
public sealed class HwInsertUnderMmap : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_insert_under_mmap.update");
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
    public Errno Watch(ulong start, ulong length)
    {
        _mm.MmapLock.WriteLock();
        try
        {
#if FIXED
            return _notifier.InsertLocked(_mm, start, length);
#else
            return _notifier.Insert(_mm, start, length);
#endif
        }
        finally { _mm.MmapLock.WriteUnlock(); }
    }
    public void Unwatch() => _notifier.Remove();
}
