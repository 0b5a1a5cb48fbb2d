// HMM1006: takes the device lock and U in opposite orders on two paths
[HmmDriver("dsl_order_cycle", UpdateLock = nameof(_update))]
public partial class DslOrderCycle
{
    private readonly KernelMutex _update = new("dsl_order_cycle.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    private readonly KernelMutex _device = new("device");
    public void Reset()
    {
        _device.Lock();
        try { _update.Lock(); _update.Unlock(); }
        finally { _device.Unlock(); }
    }
    public void Shrink()
    {
#if FIXED
        _device.Lock();
        try { _update.Lock(); _update.Unlock(); }
        finally { _device.Unlock(); }
#else
        _update.Lock();
        try { _device.Lock(); _device.Unlock(); }
        finally { _update.Unlock(); }
#endif
    }
}
