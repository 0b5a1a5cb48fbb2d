// HMM1001: bumps a counter the invalidate updates under U without holding U
[HmmDriver("dsl_guarded_counter", UpdateLock = nameof(_update))]
public partial class DslGuardedCounter
{
    private readonly KernelMutex _update = new("dsl_guarded_counter.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    [GuardedBy(nameof(_update))] private long _mapped;
    [OnInvalidate]
    void Invalidate(in NotifierRange range) { _mapped = 0; _pt.Clear(range.Start, range.End); }
    public void Mapped(long n)
    {
#if FIXED
        _update.Lock();
        try { _mapped += n; } finally { _update.Unlock(); }
#else
        _mapped += n;
#endif
    }
}
