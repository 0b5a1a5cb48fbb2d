using Hmm.Dsl;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;

namespace MyDriver;

/// <summary>
/// A small GPU driver in the Hmm.Gen DSL. It mirrors one process's address space into a device page
/// table (the kernel's hmm_range_fault + mmu_interval_notifier pattern), owns 2 MiB chunks of
/// device-private memory, and services a replayable fault buffer. This file is the whole driver:
/// the generator writes the other half of the partial class (Attach, Fault, the notifier
/// trampoline, MigrateToDevice / MigrateToSystem, ServiceFaults, RunToCompletion, counters).
/// </summary>
[HmmDriver("gpu", UpdateLock = nameof(_svmm))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 4)]
[FaultBuffer(Entries = 1024, BatchSize = 64, Replay = ReplayPolicy.Batch)]
public sealed partial class GpuDriver
{
    // The update lock U: the generated fault path programs the device table under it only after
    // ReadRetry says no invalidation raced with the snapshot; the notifier trampoline takes it too.
    private readonly KernelMutex _svmm = new("gpu.svmm");

    [GuardedBy(nameof(_svmm))] private long _pagesProgrammed;
    [GuardedBy(nameof(_svmm))] private long _rangesInvalidated;

    /// <summary>When true, a device write migrates the page to device memory (first-touch placement); reads are mapped in place.</summary>
    public bool MigrateOnWrite { get; set; } = true;

    /// <summary>Pages the device table received through <see cref="Map"/> (read under the update lock).</summary>
    public long PagesProgrammed
    {
        get
        {
            _svmm.Lock();
            try { return _pagesProgrammed; }
            finally { _svmm.Unlock(); }
        }
    }

    /// <summary>Invalidations of the mirrored address space this driver saw (read under the update lock).</summary>
    public long RangesInvalidated
    {
        get
        {
            _svmm.Lock();
            try { return _rangesInvalidated; }
            finally { _svmm.Unlock(); }
        }
    }

    // U held, snapshot known good, DeviceTable already programmed: account for it.
    [OnMirrorFault]
    private void Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => _pagesProgrammed += hmmPfns.Length;

    // U held, seq set, the device table of the range already cleared; may be non-blockable, so no sleeping here.
    [OnInvalidate]
    private void Invalidate(in NotifierRange range) => _rangesInvalidated++;

    // No lock held: decide per coalesced fault range.
    [FaultPolicy]
    private FaultAction Decide(in FaultRange fault)
        => fault.Atomic ? FaultAction.Exclusive
         : fault.Write && MigrateOnWrite ? FaultAction.MigrateToDevice
         : FaultAction.MapInPlace;

    // The device's DMA engine; the copy is complete on return.
    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);
}
