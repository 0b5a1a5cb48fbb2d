using Hmm.Dsl;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Mirror;

namespace Hmm.Generators.Behaviour.Tests.Drivers;

/// <summary>
/// test_hmm's dmirror_device memory as the DSL options declare it: one 4 MiB chunk plugged with the
/// memory (InitialChunks, dmirror_device_init), lists laid out per request with no folio split
/// (SplitFolios = false, dmirror_allocate_chunk), calloc/cfree (PageCounters), and the kind, chunk
/// size and limit chosen per device at run time (Configurable: minors 0–1 private, 2–3 coherent).
/// </summary>
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 4L << 20, MaxChunks = 4, InitialChunks = 1, SplitFolios = false, PageCounters = true, Configurable = true)]
internal sealed partial class TestHmmDevmem
{
}

/// <summary>An open file of a <see cref="TestHmmDevmem"/>: 32-page fault batches and the non-programming Snapshot.</summary>
[HmmDriver("testhmmfile", Memory = nameof(Memory), FaultBatchPages = 32, GenerateSnapshot = true)]
internal sealed partial class TestHmmFile(TestHmmDevmem memory)
{
    public TestHmmDevmem Memory { get; } = memory;

    /// <summary>Pages per programmed piece, in order ([OnMirrorFault] runs once per hmm_range_fault piece).</summary>
    public List<int> Pieces { get; } = [];

    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);

    [OnMirrorFault] private void Mapped(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => Pieces.Add(hmmPfns.Length);
}

/// <summary>2 MiB chunks, no folio split: a freed folio is never cut up for a base page.</summary>
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 4, SplitFolios = false, PageCounters = true)]
internal sealed partial class NoSplitDevmem
{
}

/// <summary>An open file of a <see cref="NoSplitDevmem"/>.</summary>
[HmmDriver("nosplitfile", Memory = nameof(Memory))]
internal sealed partial class NoSplitFile(NoSplitDevmem memory)
{
    public NoSplitDevmem Memory { get; } = memory;

    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);
}

/// <summary>A driver's own memory with one chunk plugged by Attach (the default layout: folios, split on demand).</summary>
[HmmDriver("owninitial")]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 2, InitialChunks = 1, PageCounters = true)]
internal sealed partial class OwnInitialDriver
{
    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);
}

/// <summary>Snapshot with the range-lock fault path: the snapshot still uses the notifier's sequence.</summary>
[HmmDriver("locksnap", Sync = MirrorSync.RangeLock, GenerateSnapshot = true)]
internal sealed partial class RangeLockSnapshotDriver
{
}
