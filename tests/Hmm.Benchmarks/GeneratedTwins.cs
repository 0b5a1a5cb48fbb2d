using Hmm.Dsl;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;

namespace Hmm.Benchmarks;

/// <summary>
/// The DSL twin of <see cref="BenchDriver"/>: device-private memory (one chunk the size of the
/// hand-written driver's pagemap), migration both ways generated; the DMA engine is the device's.
/// </summary>
[HmmDriver("bench-devmem")]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 192L << 20, MaxChunks = 1)]
internal sealed partial class GeneratedBenchDriver
{
    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);
}

/// <summary>The DSL twin of the fault-service benchmark's <c>MirrorDriver</c> (batch 256, one replay per batch).</summary>
[HmmDriver("bench-mirror")]
[FaultBuffer(Entries = 4096, BatchSize = 256, Replay = ReplayPolicy.Batch)]
internal sealed partial class GeneratedMirrorDriver
{
}
