using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;

namespace Hmm.Generators.Behaviour.Tests.Drivers;

/// <summary>
/// Device memory shared by every open file of one device (test_hmm's dmirror_device): a device-level
/// [DeviceMemory] class; the generated code hands a CPU fault on a page to the file that migrated it.
/// </summary>
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 4)]
internal sealed partial class SharedDevmem
{
    public long Freed;

    [OnPageFree] private void Free(ulong pfn) => Interlocked.Increment(ref Freed);
}

/// <summary>
/// One open file of a <see cref="SharedDevmem"/> device. [OnMigrated] records, under U and before
/// finalize, what moved and the CPU entry it saw; [AllocatePage] fails on request (FAIL_ALLOC).
/// </summary>
[HmmDriver("sharedfile", UpdateLock = nameof(_update), Memory = nameof(Memory))]
internal sealed partial class SharedFileDriver(SharedDevmem memory)
{
    private readonly KernelMutex _update = new("sharedfile.update");
    private int _failNext;

    public SharedDevmem Memory { get; } = memory;

    /// <summary>Entries [OnMigrated] saw moved, per call.</summary>
    public List<int> MovedPerCall { get; } = [];

    /// <summary>The CPU entry kinds of the moved pages as [OnMigrated] saw them (before finalize: migration entries).</summary>
    public List<PteKind> KindsSeen { get; } = [];

    /// <summary>Whether U was held by the calling thread every time [OnMigrated] ran.</summary>
    public bool UHeldInCallback { get; private set; } = true;

    public int Allocations;
    public int RefusedAllocations;

    public void FailNextAllocation() => Volatile.Write(ref _failNext, 1);

    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);

    [OnMigrated]
    private void Migrated(MigrateVma args)
    {
        UHeldInCallback &= _update.IsHeldByCurrentThread;
        int moved = 0;
        for (int i = 0; i < args.EntryCount; i++)
        {
            if ((args.Src[i] & MigratePfn.Migrate) == 0 || !MigratePfn.IsValid(args.Dst[i])) continue;
            moved++;
            KindsSeen.Add(args.Vma!.Mm.EntryAt(args.Start + ((ulong)i << Page.Shift)).Kind);
        }
        MovedPerCall.Add(moved);
    }

    [AllocatePage]
    private bool Allocate(int order, bool toDevice, out ulong pfn)
    {
        pfn = 0;
        if (Interlocked.Exchange(ref _failNext, 0) != 0)
        {
            Interlocked.Increment(ref RefusedAllocations);
            return false;
        }
        Interlocked.Increment(ref Allocations);
        return toDevice ? Memory.TryAllocateDevicePage(order, out pfn) : SystemPages.TryAllocateLocked(Device.Machine, order, out pfn);
    }
}

/// <summary>An open file of a <see cref="SharedDevmem"/> device with the generated allocator (bulk base pages, no [AllocatePage]).</summary>
[HmmDriver("plainfile", Memory = nameof(Memory))]
internal sealed partial class PlainSharedFileDriver(SharedDevmem memory)
{
    public SharedDevmem Memory { get; } = memory;

    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);
}
