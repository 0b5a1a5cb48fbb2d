// HMM1022: keeps the exclusive folio locked when the atomic mapping fails
[HmmDriver("dsl_exclusive_leak", UpdateLock = nameof(_update))]
public partial class DslExclusiveLeak
{
    private readonly KernelMutex _update = new("dsl_exclusive_leak.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    private Errno MapAtomic(ulong pfn) => pfn == 0 ? Errno.EFAULT : Errno.Ok;
    public Errno Atomic(ulong addr)
    {
        _mm.MmapLock.ReadLock();
        try
        {
            var e = DeviceExclusive.Make(_mm, addr, this, out var page);
            if (e != Errno.Ok) return e;
#if FIXED
            using (page) return MapAtomic(page.Pfn);
#else
            if (MapAtomic(page.Pfn) != Errno.Ok) return Errno.EFAULT;
            page.Dispose();
            return Errno.Ok;
#endif
        }
        finally { _mm.MmapLock.ReadUnlock(); }
    }
}
