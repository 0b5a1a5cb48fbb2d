// HMM1014: refuses the invalidation whenever the device is busy, blockable or not
[HmmDriver("dsl_invalidate_busy", UpdateLock = nameof(_update))]
public partial class DslInvalidateBusy
{
    private readonly KernelMutex _update = new("dsl_invalidate_busy.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    private bool _busy;
    [OnInvalidate]
    bool Invalidate(in NotifierRange range)
    {
#if FIXED
        if (_busy && !range.Blockable) return false;
#else
        if (_busy) return false;
#endif
        _pt.Clear(range.Start, range.End);
        return true;
    }
}
