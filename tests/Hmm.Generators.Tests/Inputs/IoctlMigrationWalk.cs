using Hmm.Runtime.Migration;

namespace Samples.IoctlWalk;

/// <summary>The device memory every open file of one device migrates into (test_hmm's dmirror_device).</summary>
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 4L << 20, MaxChunks = 4)]
public sealed partial class WalkDevice
{
}

/// <summary>
/// One open file whose MigrateToDevice / MigrateToSystem walk as test_hmm's ioctls do
/// (MigrationWalk = TestHmmIoctl): pieces from the address, EINVAL without a VMA or VM_READ, no
/// invalidation before migrating to the device (what moved is mapped by [OnMigrated]), only the
/// entries given a system page erased on the way back, a failed system allocation not an error, and
/// the cpages overload of MigrateToSystem.
/// </summary>
[HmmDriver("walk", Memory = nameof(Memory), MigrationWalk = MigrationWalk.TestHmmIoctl)]
public sealed partial class WalkFile
{
    public WalkFile(WalkDevice memory) => Memory = memory;

    public WalkDevice Memory { get; }

    public long Mapped { get; private set; }

    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);

    [OnMigrated]
    private void Map(MigrateVma args)
    {
        for (int i = 0; i < args.EntryCount; i++)
            if ((args.Src[i] & MigratePfn.Migrate) != 0 && MigratePfn.IsValid(args.Dst[i])) Mapped++;
    }
}
