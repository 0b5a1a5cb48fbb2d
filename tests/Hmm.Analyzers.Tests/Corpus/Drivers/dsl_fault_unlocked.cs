// HMM1010: calls hmm_range_fault without the mmap lock
[HmmDriver("dsl_fault_unlocked", UpdateLock = nameof(_update))]
public partial class DslFaultUnlocked
{
    private readonly KernelMutex _update = new("dsl_fault_unlocked.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    public Errno Prefetch(HmmRange range)
    {
        range.NotifierSeq = _notifier.ReadBegin();
#if FIXED
        _mm.MmapLock.ReadLock();
        try { return range.Fault(); } finally { _mm.MmapLock.ReadUnlock(); }
#else
        return range.Fault();
#endif
    }
}
