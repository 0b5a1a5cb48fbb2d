using Hmm.Dsl;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Mm;

namespace Hmm.Generators.Behaviour.Tests.Drivers;

/// <summary>What a [BeforeMigrateToRam] call saw of the fault and of the driver when it ran.</summary>
/// <param name="Address">vmf.Address.</param>
/// <param name="Entry">The CPU entry at the address (device-private: nothing collected, no migration entry).</param>
/// <param name="UpdateLockHeld">Whether U was held (it must not be).</param>
/// <param name="MmapLockHeld">Whether the mmap lock was held (the core holds it for read).</param>
/// <param name="MigrateInvalidations">The driver's own MIGRATE invalidations so far (migrate_vma_setup raises one).</param>
/// <param name="PagesMigratedToSystem">The driver's migrated-back count so far.</param>
internal readonly record struct HookObservation(ulong Address, PteKind Entry, bool UpdateLockHeld, bool MmapLockHeld, int MigrateInvalidations, long PagesMigratedToSystem);

/// <summary>
/// Device-private memory with a [BeforeMigrateToRam] hook: records what it sees and holds the CPU
/// fault back (returns false: the fault is retried) while <see cref="Holds"/> is positive.
/// </summary>
[HmmDriver("hooked", UpdateLock = nameof(_update))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 2)]
internal sealed partial class HookedDevmemDriver
{
    private readonly KernelMutex _update = new("hooked.update");

    /// <summary>How many more hook calls answer "retry".</summary>
    public int Holds { get; set; }

    /// <summary>Own MIGRATE invalidations seen by [OnInvalidate] (U held).</summary>
    public int MigrateInvalidations { get; private set; }

    public List<HookObservation> Seen { get; } = [];

    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);

    [OnInvalidate]
    private void Invalidate(in NotifierRange range)
    {
        if (range.Event == NotifyEvent.Migrate) MigrateInvalidations++;
    }

    [BeforeMigrateToRam]
    private bool BeforeMigrateToRam(in VmFault vmf)
    {
        Seen.Add(new HookObservation(vmf.Address, vmf.Mm.EntryAt(vmf.Address).Kind, _update.IsHeldByCurrentThread,
            vmf.Mm.MmapLock.IsLocked, MigrateInvalidations, PagesMigratedToSystem));
        if (Holds <= 0) return true;
        Holds--;
        return false;
    }
}

/// <summary>Device-level memory for <see cref="HookedSharedFile"/>.</summary>
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 2)]
internal sealed partial class HookedSharedDevmem
{
}

/// <summary>An open file of shared device memory whose [BeforeMigrateToRam] opens the memory's hand-over of migrate_to_ram.</summary>
[HmmDriver("hookedfile", Memory = nameof(Memory))]
internal sealed partial class HookedSharedFile(HookedSharedDevmem memory)
{
    public HookedSharedDevmem Memory { get; } = memory;

    public List<PteKind> EntriesSeen { get; } = [];

    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);

    [BeforeMigrateToRam]
    private bool BeforeMigrateToRam(in VmFault vmf)
    {
        EntriesSeen.Add(vmf.Mm.EntryAt(vmf.Address).Kind);
        return true;
    }
}
