// HMM1021: evicts its device pages back to RAM from inside the invalidate
[HmmDriver("dsl_invalidate_evict", UpdateLock = nameof(_update))]
public partial class DslInvalidateEvict
{
    private readonly KernelMutex _update = new("dsl_invalidate_evict.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    private DevPagemap _pgmap = null!;
    private bool _evictPending;
    [OnInvalidate]
    void Invalidate(in NotifierRange range)
    {
        _pt.Clear(range.Start, range.End);
#if FIXED
        _evictPending = true;
#else
        if (range.Blockable) MigrateDevice.Evict(_pgmap, _pgmap.FirstPfn, 1);
#endif
    }
    public void Work() { if (_evictPending) { _evictPending = false; MigrateDevice.Evict(_pgmap, _pgmap.FirstPfn, 1); } }
}
