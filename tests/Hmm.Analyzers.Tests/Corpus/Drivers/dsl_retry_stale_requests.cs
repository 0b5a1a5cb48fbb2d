// HMM1027: a snapshot ioctl retries hmm_range_fault with last attempt's outputs as per-entry requests
[HmmDriver("dsl_retry_stale_requests", UpdateLock = nameof(_update))]
public partial class DslRetryStaleRequests
{
    private readonly KernelMutex _update = new("dsl_retry_stale_requests.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    [OnInvalidate]
    void Invalidate(in NotifierRange range) { }
    public Errno Snapshot(ulong start, ulong end, ReadOnlySpan<bool> write)
    {
        var range = new HmmRange(_notifier, start, end) { PfnFlagsMask = HmmPfn.ReqFault | HmmPfn.ReqWrite };
        for (int i = 0; i < range.HmmPfns.Length; i++) range.HmmPfns[i] = HmmPfn.ReqFault | (write[i] ? HmmPfn.ReqWrite : 0);
        for (int attempt = 0; attempt < 16; attempt++)
        {
#if FIXED
            for (int i = 0; i < range.HmmPfns.Length; i++) range.HmmPfns[i] = HmmPfn.ReqFault | (write[i] ? HmmPfn.ReqWrite : 0);
#endif
            range.NotifierSeq = _notifier.ReadBegin();
            _mm.MmapLock.ReadLock();
            Errno e;
            try { e = range.Fault(); }
            finally { _mm.MmapLock.ReadUnlock(); }
            if (e != Errno.EBUSY) return e;
        }
        return Errno.EBUSY;
    }
}
