using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;

namespace Hmm.Generators.Behaviour.Tests.Drivers;

/// <summary>A mirror-only DSL driver (sequence retry).</summary>
[HmmDriver("mirror", UpdateLock = nameof(_update))]
internal sealed partial class SeqMirror
{
    private readonly KernelMutex _update = new("seqmirror.update");

    [GuardedBy(nameof(_update))] public long CallbackInvalidations { get; private set; }
    [GuardedBy(nameof(_update))] public long CallbackMapped { get; private set; }
    public bool Released { get; private set; }

    [OnInvalidate] private void Invalidate(in NotifierRange range) => CallbackInvalidations++;
    [OnMirrorFault] private void Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => CallbackMapped += hmmPfns.Length;
    [OnRelease] private void Release() => Released = true;
}

/// <summary>The range-lock mirror.</summary>
[HmmDriver("ranged", Sync = MirrorSync.RangeLock)]
internal sealed partial class RangeLockMirror
{
}

/// <summary>The range-monitor mirror.</summary>
[HmmDriver("monitored", Sync = MirrorSync.RangeMonitor)]
internal sealed partial class RangeMonitorMirror
{
}

/// <summary>Device-private memory in 2 MiB chunks, at most <see cref="DeviceMaxChunks"/> of them.</summary>
[HmmDriver("devmem")]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 4)]
internal sealed partial class DevmemDriver
{
    public long Copied { get; private set; }
    public long Freed;

    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies)
    {
        Device.Copy.Copy(copies);
        Copied += copies.Length;
    }

    [OnPageFree] private void Free(ulong pfn) => Interlocked.Increment(ref Freed);
}

/// <summary>One 2 MiB chunk only: large allocations fail once a page of it is in use.</summary>
[HmmDriver("tiny")]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 1)]
internal sealed partial class TinyDevmemDriver
{
    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);
}

/// <summary>A GPU with a fault buffer: atomics exclusive, writes migrate when asked, else map in place.</summary>
[HmmDriver("gpu", UpdateLock = nameof(_svmm))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 8)]
[FaultBuffer(Entries = 64, BatchSize = 64)]
internal sealed partial class GpuDriver
{
    private readonly KernelMutex _svmm = new("gpu.svmm");

    public bool MigrateOnWrite { get; set; }

    [FaultPolicy]
    private FaultAction Decide(in FaultRange fault)
        => fault.Atomic ? FaultAction.Exclusive : fault.Write && MigrateOnWrite ? FaultAction.MigrateToDevice : FaultAction.MapInPlace;

    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);
}

/// <summary>Exports BAR memory to peers; refuses writable mappings.</summary>
[HmmDriver("exporter")]
[P2pExporter]
internal sealed partial class ExportingDriver
{
    public int Refused { get; private set; }

    [OnP2pExport]
    private Errno Allow(Vma vma, Hmm.Runtime.Pci.PciFunction importer, ulong start, ulong end, bool write)
    {
        if (!write) return Errno.Ok;
        Refused++;
        return Errno.EACCES;
    }
}

/// <summary>Maps a peer's exported memory for DMA.</summary>
[HmmDriver("importer")]
[P2pImporter]
internal sealed partial class ImportingDriver
{
    public int Programmed { get; private set; }

    [OnP2pImport]
    private Errno Program(Hmm.Runtime.Pci.P2pVmaImport import)
    {
        Programmed++;
        return Errno.Ok;
    }
}
