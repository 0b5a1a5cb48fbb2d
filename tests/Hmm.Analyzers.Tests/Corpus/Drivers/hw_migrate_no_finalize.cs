// HMM1020: bails out of a migration without finalize when allocation fails
public sealed class HwMigrateNoFinalize : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_migrate_no_finalize.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();

    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
        try { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); return true; }
        finally { _update.Unlock(); }
    }
    private bool Allocate(MigrateVma args) => args.EntryCount > 0;
    public Errno ToDevice(Vma vma, ulong start)
    {
        using var args = new MigrateVma { Vma = vma, Start = start, End = start + 4096, Src = new ulong[1], Dst = new ulong[1], PgmapOwner = this };
        _mm.MmapLock.ReadLock();
        try
        {
            if (MigrateVma.Setup(args) != Errno.Ok) return Errno.EINVAL;
#if FIXED
            try { if (!Allocate(args)) return Errno.ENOMEM; MigrateVma.Pages(args); }
            finally { MigrateVma.Finalize(args); }
#else
            if (!Allocate(args)) return Errno.ENOMEM;
            MigrateVma.Pages(args);
            MigrateVma.Finalize(args);
#endif
            return Errno.Ok;
        }
        finally { _mm.MmapLock.ReadUnlock(); }
    }
}
