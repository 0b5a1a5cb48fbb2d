// HMM1020: returns on a failed copy without finalizing the migration
[HmmDriver("dsl_migrate_error_path", UpdateLock = nameof(_update))]
public partial class DslMigrateErrorPath
{
    private readonly KernelMutex _update = new("dsl_migrate_error_path.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    private Errno Copy(MigrateVma args) => args.EntryCount > 0 ? Errno.Ok : Errno.ENOMEM;
    public Errno ToDevice(Vma vma, ulong start)
    {
        using var args = new MigrateVma { Vma = vma, Start = start, End = start + 4096, Src = new ulong[1], Dst = new ulong[1], PgmapOwner = this };
        _mm.MmapLock.ReadLock();
        try
        {
            var e = MigrateVma.Setup(args);
            if (e != Errno.Ok) return e;
#if FIXED
            if (Copy(args) != Errno.Ok) { MigrateVma.Finalize(args); return Errno.ENOMEM; }
#else
            if (Copy(args) != Errno.Ok) return Errno.ENOMEM;
#endif
            MigrateVma.Pages(args);
            MigrateVma.Finalize(args);
            return Errno.Ok;
        }
        finally { _mm.MmapLock.ReadUnlock(); }
    }
}
