using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;

namespace Hmm.Generators.Behaviour.Tests.Drivers;

/// <summary>The device memory both walk drivers migrate into (test_hmm's dmirror_device).</summary>
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 4L << 20, MaxChunks = 4)]
internal sealed partial class WalkDevmem
{
}

/// <summary>
/// What a dmirror-like file sees of a migration walk: its own page table (vpn → pfn, filled by
/// [OnMirrorFault] and by [OnMigrated] for what moved to the device, erased by [OnInvalidate]), the
/// pieces [OnMigrated] was called for, and the own invalidations; [AllocatePage] refuses on request.
/// </summary>
internal interface IWalkRecorder
{
    Dictionary<ulong, ulong> Table { get; }

    List<(ulong Start, ulong End)> Pieces { get; }

    List<(ulong Start, ulong End)> OwnErases { get; }

    /// <summary>Refuses the allocation <paramref name="skip"/> allocations from now in that direction, once.</summary>
    void RefuseAfter(int skip, bool toDevice);

    Errno MigrateToDevice(ulong start, ulong end);

    Errno MigrateToSystem(ulong start, ulong end);

    Errno Fault(ulong start, ulong end, bool write);

    Errno Attach(SimDevice device, Process process);

    void Detach();
}

/// <summary>The recording shared by both drivers (the generated parts differ only by the walk option).</summary>
internal sealed class WalkRecording
{
    public readonly Dictionary<ulong, ulong> Table = [];
    public readonly List<(ulong Start, ulong End)> Pieces = [];
    public readonly List<(ulong Start, ulong End)> OwnErases = [];
    private int _countdown = -1;
    private bool _refuseToDevice;

    public void RefuseAfter(int skip, bool toDevice)
    {
        _refuseToDevice = toDevice;
        _countdown = skip;
    }

    public bool Refuses(bool toDevice)
    {
        if (toDevice != _refuseToDevice || _countdown < 0) return false;
        return _countdown-- == 0;
    }

    public void Store(HmmRange range, ReadOnlySpan<ulong> pfns)
    {
        for (int i = 0; i < pfns.Length; i++) Table[(range.Start >> Page.Shift) + (ulong)i] = HmmPfn.ToPfn(pfns[i]);
    }

    public void Erase(in NotifierRange range, object owner)
    {
        if (range.Event == NotifyEvent.Migrate && ReferenceEquals(range.Owner, owner)) OwnErases.Add((range.Start, range.End));
        for (ulong v = range.Start >> Page.Shift; v < range.End >> Page.Shift; v++) Table.Remove(v);
    }

    public void Migrated(MigrateVma args)
    {
        Pieces.Add((args.Start, args.End));
        if ((args.Flags & MigrateSelect.System) == 0) return;
        for (int i = 0; i < args.EntryCount; i++)
            if ((args.Src[i] & MigratePfn.Migrate) != 0 && MigratePfn.IsValid(args.Dst[i]))
                Table[(args.Start >> Page.Shift) + (ulong)i] = args.Dst[i] >> MigratePfn.Shift;
    }
}

/// <summary>test_hmm's ioctl walk: <c>MigrationWalk = TestHmmIoctl</c>.</summary>
[HmmDriver("ioctlwalk", UpdateLock = nameof(_update), Memory = nameof(Memory), MigrationWalk = MigrationWalk.TestHmmIoctl)]
internal sealed partial class IoctlWalkDriver(WalkDevmem memory) : IWalkRecorder
{
    private readonly KernelMutex _update = new("ioctlwalk.update");
    private readonly WalkRecording _r = new();

    public WalkDevmem Memory { get; } = memory;

    public Dictionary<ulong, ulong> Table => _r.Table;

    public List<(ulong Start, ulong End)> Pieces => _r.Pieces;

    public List<(ulong Start, ulong End)> OwnErases => _r.OwnErases;

    public void RefuseAfter(int skip, bool toDevice) => _r.RefuseAfter(skip, toDevice);

    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);

    [OnMirrorFault] private void Map(HmmRange range, ReadOnlySpan<ulong> pfns) => _r.Store(range, pfns);

    [OnInvalidate] private void Erase(in NotifierRange range) => _r.Erase(in range, PgmapOwner);

    [OnMigrated] private void Migrated(MigrateVma args) => _r.Migrated(args);

    [AllocatePage]
    private bool Allocate(int order, bool toDevice, out ulong pfn)
    {
        pfn = 0;
        if (_r.Refuses(toDevice)) return false;
        return toDevice ? Memory.TryAllocateDevicePage(order, out pfn) : SystemPages.TryAllocateLocked(Device.Machine, order, out pfn);
    }
}

/// <summary>The same driver with the generated default walk (the negative case).</summary>
[HmmDriver("alignedwalk", UpdateLock = nameof(_update), Memory = nameof(Memory))]
internal sealed partial class AlignedWalkDriver(WalkDevmem memory) : IWalkRecorder
{
    private readonly KernelMutex _update = new("alignedwalk.update");
    private readonly WalkRecording _r = new();

    public WalkDevmem Memory { get; } = memory;

    public Dictionary<ulong, ulong> Table => _r.Table;

    public List<(ulong Start, ulong End)> Pieces => _r.Pieces;

    public List<(ulong Start, ulong End)> OwnErases => _r.OwnErases;

    public void RefuseAfter(int skip, bool toDevice) => _r.RefuseAfter(skip, toDevice);

    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);

    [OnMirrorFault] private void Map(HmmRange range, ReadOnlySpan<ulong> pfns) => _r.Store(range, pfns);

    [OnInvalidate] private void Erase(in NotifierRange range) => _r.Erase(in range, PgmapOwner);

    [OnMigrated] private void Migrated(MigrateVma args) => _r.Migrated(args);

    [AllocatePage]
    private bool Allocate(int order, bool toDevice, out ulong pfn)
    {
        pfn = 0;
        if (_r.Refuses(toDevice)) return false;
        return toDevice ? Memory.TryAllocateDevicePage(order, out pfn) : SystemPages.TryAllocateLocked(Device.Machine, order, out pfn);
    }
}
