// HMM1036: the release callback flushes the system workqueue, which may run a deferred mm put's exit teardown
[HmmDriver("dsl_release_flush", UpdateLock = nameof(_update))]
public partial class DslReleaseFlush
{
    private readonly KernelMutex _update = new("dsl_release_flush.update");
    private AddressSpace _mm = null!;
    private readonly DevicePageTable _pt = new();
    private bool _drainPending;
    private void Drain() => _mm.Machine.SystemWork.Flush();
    [OnRelease]
    void Release()
    {
#if FIXED
        _drainPending = true;
#else
        Drain();
#endif
    }
    public void Reap() { if (_drainPending) { _drainPending = false; Drain(); } }
}
