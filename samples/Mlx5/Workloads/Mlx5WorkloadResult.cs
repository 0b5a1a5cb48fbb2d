namespace Hmm.Samples.Mlx5;

/// <summary>
/// What one F.2 / F.4 workload shows: the counters (the MR's B.10 set first, then the driver's and
/// the GPU's), the simulated time of every device, whether every byte read back matched the
/// reference, and how the bytes reached their target (p2p into VRAM, or through migrate-to-RAM).
/// </summary>
/// <param name="Name">The workload ("odp-rdma-write", ...).</param>
/// <param name="Counters">Counters by name (B.10 names: page_faults, page_faults_handled, page_invalidations, page_invalidations_handled, page_prefetch).</param>
/// <param name="SimulatedTimeNs">Simulated time charged to the NICs and GPUs.</param>
/// <param name="DataVerified">Every byte read matched the reference.</param>
/// <param name="P2pBytes">Bytes the NIC moved straight into (or out of) GPU memory through the BAR.</param>
/// <param name="FallbackBytes">Bytes that reached GPU-resident pages only after they migrated to RAM.</param>
/// <param name="Migrations">Pages migrated (GPU → RAM) because a device faulted on them.</param>
public sealed record Mlx5WorkloadResult(
    string Name,
    IReadOnlyDictionary<string, long> Counters,
    long SimulatedTimeNs,
    bool DataVerified,
    long P2pBytes,
    long FallbackBytes,
    long Migrations);
