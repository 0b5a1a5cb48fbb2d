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
    bool Invalidate(in NotifierRange range)
    {
#if FIXED
        if (!range.Blockable) return false;
#endif
        FlushEngine();
        _pt.Clear(range.Start, range.End);
        return true;
    }
}
