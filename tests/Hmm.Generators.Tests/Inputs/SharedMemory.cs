using Hmm.Runtime.Migration;

namespace Samples.Shared;

/// <summary>
/// Device memory shared by every open file of one device (test_hmm's dmirror_device): a device-level
/// class with [DeviceMemory] and no [HmmDriver]; only its memory is generated.
/// </summary>
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 8)]
public sealed partial class SharedDevice
{
    private long _freed;

    public long PagesFreed => System.Threading.Interlocked.Read(ref _freed);

    [OnPageFree]
    private void Free(ulong pfn) => System.Threading.Interlocked.Increment(ref _freed);
}

/// <summary>
/// One open file of a <see cref="SharedDevice"/>: migrates into the shared memory, maps what it
/// migrated between pages and finalize ([OnMigrated]), and fails one allocation on request
/// ([AllocatePage], test_hmm's FAIL_ALLOC).
/// </summary>
[HmmDriver("shared", Memory = nameof(Memory))]
public sealed partial class SharedFile
{
    private int _failNext;

    public SharedFile(SharedDevice memory) => Memory = memory;

    public SharedDevice Memory { get; }

    public long MigratedEntries { get; private set; }

    public void FailNextAllocation() => System.Threading.Volatile.Write(ref _failNext, 1);

    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);

    [OnMigrated]
    private void Migrated(MigrateVma args)
    {
        for (int i = 0; i < args.EntryCount; i++)
            if ((args.Src[i] & MigratePfn.Migrate) != 0) MigratedEntries++;
    }

    [AllocatePage]
    private bool Allocate(int order, bool toDevice, out ulong pfn)
    {
        pfn = 0;
        if (System.Threading.Interlocked.Exchange(ref _failNext, 0) != 0) return false;
        return toDevice ? Memory.TryAllocateDevicePage(order, out pfn) : SystemPages.TryAllocateLocked(Device.Machine, order, out pfn);
    }
}
