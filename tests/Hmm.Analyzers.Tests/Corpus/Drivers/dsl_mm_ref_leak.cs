// HMM1023: forgets mmput when the range check fails
[HmmDriver("dsl_mm_ref_leak", UpdateLock = nameof(_update))]
public partial class DslMmRefLeak
{
    private readonly KernelMutex _update = new("dsl_mm_ref_leak.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    public Errno Snapshot(ulong addr)
    {
        if (!_mm.TryGet()) return Errno.EINVAL;
#if FIXED
        if (addr == 0) { _mm.Put(); return Errno.EINVAL; }
#else
        if (addr == 0) return Errno.EINVAL;
#endif
        _mm.Put();
        return Errno.Ok;
    }
}
