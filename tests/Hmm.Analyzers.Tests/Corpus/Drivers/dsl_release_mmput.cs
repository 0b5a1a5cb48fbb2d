// HMM1017: drops its mm reference inside the release callback
[HmmDriver("dsl_release_mmput", UpdateLock = nameof(_update))]
public partial class DslReleaseMmput
{
    private readonly KernelMutex _update = new("dsl_release_mmput.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    private bool _putPending;
    [OnRelease]
    void Release()
    {
#if FIXED
        _putPending = true;
#else
        _mm.Put();
#endif
    }
    public void Reap() { if (_putPending) { _putPending = false; _mm.Put(); } }
}
