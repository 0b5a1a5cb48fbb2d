// HMM1019: compares range.Owner before looking at the event
[HmmDriver("dsl_owner_first", UpdateLock = nameof(_update))]
public partial class DslOwnerFirst
{
    private readonly KernelMutex _update = new("dsl_owner_first.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    [OnInvalidate]
    void Invalidate(in NotifierRange range)
    {
#if FIXED
        if (range.Event == NotifyEvent.Migrate && range.Owner == this) return;
#else
        if (range.Owner == this && range.Event == NotifyEvent.Migrate) return;
#endif
        _pt.Clear(range.Start, range.End);
    }
}
