using Hmm.Runtime.Migration;

namespace Samples.Options;

/// <summary>
/// test_hmm's dmirror_device memory as the DSL options declare it: one chunk plugged at init
/// (InitialChunks), free lists laid out per request with no folio split (SplitFolios = false), and
/// the calloc/cfree counters (PageCounters); kind, chunk size and limit chosen per device at run time
/// (Configurable: test_hmm's minors 0–1 are private, 2–3 coherent).
/// </summary>
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 4L << 20, MaxChunks = 4, InitialChunks = 1, SplitFolios = false, PageCounters = true, Configurable = true)]
public sealed partial class MirrorDevice
{
}

/// <summary>
/// One open file: faults in 32-page batches (FaultBatchPages, dmirror_fault's pfns[32]) and has the
/// non-faulting, non-programming Snapshot (GenerateSnapshot, HMM_DMIRROR_SNAPSHOT).
/// </summary>
[HmmDriver("options", Memory = nameof(Memory), FaultBatchPages = 32, GenerateSnapshot = true)]
public sealed partial class MirrorFile
{
    public MirrorFile(MirrorDevice memory) => Memory = memory;

    public MirrorDevice Memory { get; }

    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);
}
