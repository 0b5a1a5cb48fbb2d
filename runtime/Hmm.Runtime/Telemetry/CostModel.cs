namespace Hmm.Runtime.Telemetry;

/// <summary>
/// How much simulated time each device action costs (ARCHITECTURE §7). Every default comes from
/// reference/drivers.md section E; its row is named in the property's comment. Rows marked
/// <i>model</i> there are simulator assumptions of the cited source, not measurements; values
/// with no row are this simulator's own assumptions and say so.
/// </summary>
public sealed record CostModel
{
    /// <summary>The defaults below.</summary>
    public static CostModel Default { get; } = new();

    /// <summary>
    /// Flat per-fault GPU page-fault handling latency: 45 µs (66 645 core cycles at ~1481 MHz).
    /// Source: drivers.md E row 1 — UVMSmart GPGPU-Sim config for a GTX 1080 Ti (<i>model</i>).
    /// </summary>
    public long FaultNs { get; init; } = 45_000;

    /// <summary>
    /// Fixed cost of servicing one replayable-fault batch (driver entry, fetch, sort, locks):
    /// ≈ 80 µs = 30.84 ms / 384 "GPU page fault groups" for 128 MiB of first touch.
    /// Source: drivers.md E row 4 — nvprof on a GTX 1060 (NVIDIA forum thread 107172), derived.
    /// </summary>
    public long FaultBatchNs { get; init; } = 80_000;

    /// <summary>Kernel launch latency: 150 µs. Source: drivers.md E row 2 — UVMSmart config (<i>model</i>).</summary>
    public long KernelLaunchNs { get; init; } = 150_000;

    /// <summary>
    /// Saturation bandwidth <c>a</c> of the PCIe transfer curve BW(size) = (2a/π)·atan(b·size_KiB):
    /// 12 GB/s (10⁹ bytes/s). Source: drivers.md E row 3 — GPGPU-Sim UVMSmart gpu-sim.cc, fitted
    /// to a cudaMemcpy H2D benchmark on PCIe 3.0 x16.
    /// </summary>
    public double PcieBandwidthGBps { get; init; } = 12.0;

    /// <summary>Shape constant <c>b</c> (per KiB) of the same curve: 0.07292. Source: drivers.md E row 3.</summary>
    public double PcieCurveB { get; init; } = 0.07292;

    /// <summary>
    /// Device TLB invalidation after changing device page-table entries: 2 µs.
    /// Simulator assumption (no row of E measures it; row 6 only says host-side TLB shootdown is a
    /// large part of CPU↔GPU servicing).
    /// </summary>
    public long TlbInvalidateNs { get; init; } = 2_000;

    /// <summary>Issuing a fault-buffer replay (or cancel) to the GPU: 1 µs. Simulator assumption (not in E).</summary>
    public long ReplayNs { get; init; } = 1_000;

    /// <summary>
    /// Host-side servicing cost of a GPU↔GPU migration relative to CPU↔GPU: 0.5 — "drops below
    /// half when no CPU page-table update / TLB shootdown is needed"; 0.5 is that bound.
    /// Source: drivers.md E row 6 — Allen &amp; Ge, §4.2.
    /// </summary>
    public double GpuToGpuHostCostFactor { get; init; } = 0.5;

    /// <summary>
    /// A common-case ODP (NIC on-demand paging) page fault: 100 µs, inside the "tens to hundreds
    /// of µs" drivers.md E suggests from rows 10–11 (NP-RDMA's +60 µs major fault, ODP slower).
    /// </summary>
    public long OdpFaultNs { get; init; } = 100_000;

    /// <summary>
    /// Multiplier for a pathological ODP fault (packet loss / retransmission timeout): 1000, the low
    /// end of "3–4 orders of magnitude". Source: drivers.md E row 10 — Fukuoka, Sato, Taura.
    /// </summary>
    public double OdpPathologicalFactor { get; init; } = 1_000;

    /// <summary>BW(size) in GB/s (= bytes per ns) for one transfer of <paramref name="bytes"/> (E row 3).</summary>
    public double BandwidthGBps(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        return 2 * PcieBandwidthGBps / Math.PI * Math.Atan(PcieCurveB * (bytes / 1024.0));
    }

    /// <summary>Nanoseconds one PCIe transfer of <paramref name="bytes"/> takes: bytes / BW(bytes) (E row 3); 0 for 0 bytes.</summary>
    public long TransferNs(long bytes) => bytes == 0 ? 0 : (long)Math.Ceiling(bytes / BandwidthGBps(bytes));

    /// <summary>Servicing one fault batch of <paramref name="faults"/> faults: per-batch cost plus the flat per-fault cost each (E rows 1 and 4).</summary>
    public long FaultBatchServiceNs(int faults) => FaultBatchNs + (long)faults * FaultNs;

    /// <summary>
    /// Host cost of migrating with a copy of <paramref name="bytes"/>: transfer time plus a
    /// per-fault host cost, the latter scaled by <see cref="GpuToGpuHostCostFactor"/> when both
    /// ends are devices (E rows 1, 3, 6).
    /// </summary>
    public long MigrationNs(long bytes, bool gpuToGpu)
        => TransferNs(bytes) + (long)(FaultNs * (gpuToGpu ? GpuToGpuHostCostFactor : 1.0));

    /// <summary>One ODP fault, normal or pathological (E rows 10–11).</summary>
    public long OdpFaultServiceNs(bool pathological) => pathological ? (long)(OdpFaultNs * OdpPathologicalFactor) : OdpFaultNs;
}
