// HMM1004: leaves the statistics lock held on the early return
[HmmDriver("dsl_stats_leak", UpdateLock = nameof(_update))]
public partial class DslStatsLeak
{
    private readonly KernelMutex _update = new("dsl_stats_leak.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    private readonly SpinLock _stats = new("stats");
    private long _faults;
    public long Faults(bool reset)
    {
        _stats.Lock();
#if FIXED
        try { if (reset) { _faults = 0; return 0; } return _faults; }
        finally { _stats.Unlock(); }
#else
        if (reset) { _faults = 0; return 0; }
        long f = _faults;
        _stats.Unlock();
        return f;
#endif
    }
}
