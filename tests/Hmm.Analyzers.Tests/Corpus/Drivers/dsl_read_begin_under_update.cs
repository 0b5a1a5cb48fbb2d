// HMM1011: starts the read section while holding the update lock
[HmmDriver("dsl_read_begin_under_update", UpdateLock = nameof(_update))]
public partial class DslReadBeginUnderUpdate
{
    private readonly KernelMutex _update = new("dsl_read_begin_under_update.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    public ulong Begin()
    {
#if FIXED
        return _notifier.ReadBegin();
#else
        _update.Lock();
        try { return _notifier.ReadBegin(); }
        finally { _update.Unlock(); }
#endif
    }
}
