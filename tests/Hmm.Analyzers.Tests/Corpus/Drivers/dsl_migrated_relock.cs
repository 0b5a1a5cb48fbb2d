// HMM1006: the [OnMigrated] callback (run by the generated migration with the update lock held) bumps its counters through a helper that takes the update lock again
[HmmDriver("dsl_migrated_relock", UpdateLock = nameof(_update))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20)]
public partial class DslMigratedRelock
{
    private readonly KernelMutex _update = new("dsl_migrated_relock.update");
    private CopyEngine _dma = null!;
    [GuardedBy(nameof(_update))] private long _migrated;

    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies) => _dma.Copy(copies);

    [OnMigrated]
    private void Mapped(MigrateVma args) => Account(args.EntryCount);

#if FIXED
    private void Account(long pages) => AccountLocked(pages);
    [Requires(nameof(_update))]
    private void AccountLocked(long pages) => _migrated += pages;
#else
    private void Account(long pages) => AccountLocked(pages);
    private void AccountLocked(long pages)
    {
        _update.Lock();
        try { _migrated += pages; }
        finally { _update.Unlock(); }
    }
#endif
}
