// HMM1011: calls hmm_range_fault with the update lock held
[HmmDriver("dsl_fault_under_update", UpdateLock = nameof(_update))]
public partial class DslFaultUnderUpdate
{
    private readonly KernelMutex _update = new("dsl_fault_under_update.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    public Errno Mirror(HmmRange range)
    {
        range.NotifierSeq = _notifier.ReadBegin();
        _mm.MmapLock.ReadLock();
        try
        {
#if FIXED
            var e = range.Fault();
            _update.Lock();
            try { if (e == Errno.Ok && _notifier.ReadRetry(range.NotifierSeq)) e = Errno.EBUSY; }
            finally { _update.Unlock(); }
            return e;
#else
            _update.Lock();
            try { var e = range.Fault(); if (e == Errno.Ok && _notifier.ReadRetry(range.NotifierSeq)) e = Errno.EBUSY; return e; }
            finally { _update.Unlock(); }
#endif
        }
        finally { _mm.MmapLock.ReadUnlock(); }
    }
}
