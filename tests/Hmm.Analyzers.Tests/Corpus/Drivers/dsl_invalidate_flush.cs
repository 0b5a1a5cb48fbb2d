// HMM1013: the invalidate waits for the copy engine's mutex on a range that may be non-blockable
[HmmDriver("dsl_invalidate_flush", UpdateLock = nameof(_update))]
public partial class DslInvalidateFlush
{
    private readonly KernelMutex _update = new("dsl_invalidate_flush.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    private readonly KernelMutex _engine = new("engine");
    private void FlushEngine() { _engine.Lock(); _engine.Unlock(); }
    [OnInvalidate]
    void Invalidate(in NotifierRange range)
    {
        // The DSL callback cannot refuse (void): a non-blockable range skips the flush instead.
#if FIXED
        if (range.Blockable) FlushEngine();
#else
        FlushEngine();
#endif
        _pt.Clear(range.Start, range.End);
    }
}
