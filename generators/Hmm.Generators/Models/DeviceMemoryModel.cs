namespace Hmm.Generators.Models;

/// <summary>[DeviceMemory]: what the hotplug allocator is generated for.</summary>
/// <param name="Kind">The DevicePageKind value (kernel numbering: 1 private, 2 coherent, 5 p2p), kept as its integer.</param>
/// <param name="ChunkBytes">Bytes hot-added at a time (a multiple of 2 MiB).</param>
/// <param name="MaxChunks">Chunk limit; beyond it allocation fails with ENOMEM.</param>
/// <param name="LargeFolios">Whether 2 MiB device folios are handed out.</param>
internal sealed record DeviceMemoryModel(int Kind, long ChunkBytes, int MaxChunks, bool LargeFolios);
