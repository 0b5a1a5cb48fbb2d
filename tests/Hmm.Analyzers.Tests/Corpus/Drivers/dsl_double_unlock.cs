// HMM1005: unlocks U twice on the collision path
[HmmDriver("dsl_double_unlock", UpdateLock = nameof(_update))]
public partial class DslDoubleUnlock
{
    private readonly KernelMutex _update = new("dsl_double_unlock.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    public bool Check(HmmRange range)
    {
        _update.Lock();
        if (_notifier.ReadRetry(range.NotifierSeq))
        {
            _update.Unlock();
#if !FIXED
            _update.Unlock();
#endif
            return false;
        }
        _update.Unlock();
        return true;
    }
}
