// HMM1037: device memory removal spins on EBUSY while a page is still referenced, with no bound or back-off
[HmmDriver("dsl_unplug_spin", UpdateLock = nameof(_update))]
public partial class DslUnplugSpin
{
    private readonly KernelMutex _update = new("dsl_unplug_spin.update");
    private readonly DevicePageTable _pt = new();
    public Errno Unplug(DevPagemap pgmap)
    {
        Errno e;
#if FIXED
        long deadline = Environment.TickCount64 + HmmPfn.DefaultTimeoutMs;
        while ((e = MigrateDevice.EvictAndRemove(pgmap)) == Errno.EBUSY)
            if (Environment.TickCount64 > deadline) break;
#else
        while ((e = MigrateDevice.EvictAndRemove(pgmap)) == Errno.EBUSY) { }
#endif
        return e;
    }
}
