namespace Hmm.Generators.Models;

/// <summary>[FaultBuffer]: the fault-service loop's sizes and replay policy.</summary>
/// <param name="Entries">The device fault buffer capacity the driver requires.</param>
/// <param name="BatchSize">Entries fetched per batch (the preallocated batch and range arrays).</param>
/// <param name="Replay">The ReplayPolicy value, kept as its integer.</param>
internal sealed record FaultBufferModel(int Entries, int BatchSize, int Replay);
