// HMM1003: the [OnMigrated] callback (run with the update lock held) prefaults the page after the migrated range through the generated Fault, which takes the update lock
[HmmDriver("dsl_migrated_prefault")]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20)]
public partial class DslMigratedPrefault
{
    private CopyEngine _dma = null!;
    private ulong _prefetchAt;

    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies) => _dma.Copy(copies);

    [OnMigrated]
    private void Mapped(MigrateVma args)
    {
#if FIXED
        _prefetchAt = args.End;
#else
        _prefetchAt = args.End;
        Fault(args.End, args.End + 4096, write: false);
#endif
    }

    /// <summary>Runs the prefetch the last migration asked for, outside the update lock.</summary>
    public Errno Prefetch() => _prefetchAt == 0 ? Errno.Ok : Fault(_prefetchAt, _prefetchAt + 4096, write: false);
}
