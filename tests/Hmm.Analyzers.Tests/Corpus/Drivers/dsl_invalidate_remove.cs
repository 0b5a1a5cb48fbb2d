// HMM1016: unregisters its notifier from the invalidate on munmap
[HmmDriver("dsl_invalidate_remove", UpdateLock = nameof(_update))]
public partial class DslInvalidateRemove
{
    private readonly KernelMutex _update = new("dsl_invalidate_remove.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    private bool _dead;
    [OnInvalidate]
    void Invalidate(in NotifierRange range)
    {
        _pt.Clear(range.Start, range.End);
#if FIXED
        if (range.Event == NotifyEvent.Unmap) _dead = true;
#else
        if (range.Event == NotifyEvent.Unmap && range.Blockable) _notifier.Remove();
#endif
    }
    public bool Dead => _dead;
}
