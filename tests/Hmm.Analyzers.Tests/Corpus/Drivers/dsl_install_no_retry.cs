// HMM1012: programs the device page table without ReadRetry
[HmmDriver("dsl_install_no_retry", UpdateLock = nameof(_update))]
public partial class DslInstallNoRetry
{
    private readonly KernelMutex _update = new("dsl_install_no_retry.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    public Errno Mirror(HmmRange range)
    {
        range.NotifierSeq = _notifier.ReadBegin();
        _mm.MmapLock.ReadLock();
        Errno e;
        try { e = range.Fault(); } finally { _mm.MmapLock.ReadUnlock(); }
        if (e != Errno.Ok) return e;
        _update.Lock();
        try
        {
#if FIXED
            if (_notifier.ReadRetry(range.NotifierSeq)) return Errno.EBUSY;
#endif
            return _pt.Install(range.Start, range.HmmPfns);
        }
        finally { _update.Unlock(); }
    }
}
