namespace Hmm.Generators.Models;

/// <summary>[DeviceMemory]: what the hotplug allocator is generated for.</summary>
/// <param name="Kind">The DevicePageKind value (kernel numbering: 1 private, 2 coherent, 5 p2p), kept as its integer.</param>
/// <param name="ChunkBytes">Bytes hot-added at a time (a multiple of 2 MiB).</param>
/// <param name="MaxChunks">Chunk limit; beyond it allocation fails with ENOMEM.</param>
/// <param name="LargeFolios">Whether 2 MiB device folios are handed out.</param>
/// <param name="InitialChunks">Chunks hot-added when the memory is plugged into its device.</param>
/// <param name="SplitFolios">True: hot-added chunks are folios, split for base pages; false: test_hmm's by-request layout, no split.</param>
/// <param name="PageCounters">Emit the calloc/cfree counters and the free-list lengths.</param>
/// <param name="Configurable">Emit ConfigureDeviceMemory: kind, chunk size and limit chosen at run time (the declared ones are defaults).</param>
internal sealed record DeviceMemoryModel(int Kind, long ChunkBytes, int MaxChunks, bool LargeFolios, int InitialChunks = 0, bool SplitFolios = true, bool PageCounters = false, bool Configurable = false);
