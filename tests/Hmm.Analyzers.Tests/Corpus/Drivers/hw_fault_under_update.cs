// HMM1011: faults the range from a helper called with U held
public sealed class HwFaultUnderUpdate : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_fault_under_update.update");
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
    [RequiresShared("_mm.MmapLock")] private Errno Walk(HmmRange range) => range.Fault();
    public Errno Mirror(HmmRange range)
    {
        range.NotifierSeq = _notifier.ReadBegin();
        _mm.MmapLock.ReadLock();
        try
        {
#if FIXED
            var e = Walk(range);
            _update.Lock();
#else
            _update.Lock();
            var e = Walk(range);
#endif
            try { if (e == Errno.Ok && _notifier.ReadRetry(range.NotifierSeq)) e = Errno.EBUSY; return e; }
            finally { _update.Unlock(); }
        }
        finally { _mm.MmapLock.ReadUnlock(); }
    }
}
