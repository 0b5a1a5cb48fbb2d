namespace Hmm.Samples.Mlx5;

/// <summary>Parameters of the mlx5-like NIC (drivers.md B.11).</summary>
public sealed record Mlx5Options
{
    /// <summary>Page-fault EQ depth (MLX5_IB_NUM_PF_EQE).</summary>
    public int EqEntries { get; init; } = 4096;

    /// <summary>Pre-allocated fault descriptors (MLX5_IB_NUM_PF_DRAIN).</summary>
    public int FaultDescriptors { get; init; } = 64;

    /// <summary>
    /// Worker threads of the fault / system workqueue. 0 (only with <see cref="InlineFaults"/>): no real
    /// thread; queued work (prefetch, implicit child reaping) runs when someone calls
    /// <see cref="Mlx5IbDevice.RunQueuedWork"/> or <see cref="Mlx5IbDevice.FlushWork"/> — what exploration
    /// needs, where every thread must be a logical thread of the controlled scheduler.
    /// </summary>
    public int Workers { get; init; } = 2;

    /// <summary>Service faults on the stalled QP's own thread instead of the workqueue (deterministic demos and benchmarks).</summary>
    public bool InlineFaults { get; init; }

    /// <summary>RDMA responder prefetch cap after the resume (MAX_PREFETCH_LEN).</summary>
    public ulong PrefetchWindowBytes { get; init; } = 4UL << 20;

    /// <summary>The packet an RDMA responder fault of unknown length maps before resuming (the path MTU).</summary>
    public int PacketBytes { get; init; } = 4096;

    /// <summary>Bytes the hardware moves per DMA burst (between two looks at the MTT).</summary>
    public int BurstBytes { get; init; } = 64 << 10;

    /// <summary>
    /// A "memory scheme" device (B.4): every stall raises a memory fault (mkey, VA, demand bytes, plus
    /// prefetch-after up to <see cref="PrefetchWindowBytes"/>) instead of WQE / RDMA faults.
    /// </summary>
    public bool MemoryScheme { get; init; }

    /// <summary>Compare every translation the DMA uses with the CPU page table (the model check of F.2.5; costs a page-table walk per page).</summary>
    public bool CheckTranslations { get; init; }

    /// <summary>
    /// Test-only planted bug (exploration must find it): the invalidation zap leaves the last partial
    /// run of 8 MTT entries of the range valid, so the NIC keeps translations of pages the CPU dropped.
    /// </summary>
    internal bool PlantedZapSkipsPartialTail { get; init; }

    /// <summary>Link bandwidth charged to simulated time per transfer (100 Gb/s EDR ≈ 12.5 GB/s).</summary>
    public double LinkGBps { get; init; } = 12.5;
}
