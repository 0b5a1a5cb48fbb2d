using Hmm.Dsl;

namespace Hmm.Samples.Nouveau;

/// <summary>
/// The tunables of the opt-in UVM-style policy, one property per NVIDIA UVM module parameter
/// (drivers.md C.9), each defaulting to the published value. Every run may set any of them
/// (<c>new UvmPolicyOptions { ThrashingLapseNs = 100_000 }</c>); <see cref="Validate"/> enforces
/// the ranges UVM's module-parameter checks allow.
/// </summary>
public sealed record UvmPolicyOptions
{
    /// <summary>The published defaults.</summary>
    public static UvmPolicyOptions Default { get; } = new();

    // ---------------------------------------------------------------- fault servicing (C.1)

    /// <summary><c>uvm_perf_fault_batch_count</c> = 256 entries per batch (min 1, clamped to the HW buffer).</summary>
    public int FaultBatchCount { get; init; } = 256;

    /// <summary><c>uvm_perf_fault_replay_policy</c> = BATCH_FLUSH.</summary>
    public ReplayPolicy ReplayPolicy { get; init; } = ReplayPolicy.BatchFlush;

    /// <summary><c>uvm_perf_fault_replay_update_put_ratio</c> = 50 %: a batch with more duplicates than this re-reads PUT on flush.</summary>
    public int ReplayUpdatePutRatioPercent { get; init; } = 50;

    /// <summary><c>uvm_perf_fault_max_batches_per_service</c> = 20 batches per bottom-half run.</summary>
    public int MaxBatchesPerService { get; init; } = 20;

    /// <summary><c>uvm_perf_fault_max_throttle_per_service</c> = 5: stop a service pass after this many batches with throttled faults.</summary>
    public int MaxThrottledBatchesPerService { get; init; } = 5;

    // ---------------------------------------------------------------- thrashing (C.3)

    /// <summary><c>uvm_perf_thrashing_enable</c> = 1.</summary>
    public bool ThrashingEnabled { get; init; } = true;

    /// <summary><c>uvm_perf_thrashing_threshold</c> = 3 consecutive events within the lapse (max 7: a 3-bit counter).</summary>
    public int ThrashingThreshold { get; init; } = 3;

    /// <summary><c>uvm_perf_thrashing_pin_threshold</c> = 10 throttling periods before the page is pinned (max 255).</summary>
    public int ThrashingPinThreshold { get; init; } = 10;

    /// <summary><c>uvm_perf_thrashing_lapse_usec</c> = 500 µs, in simulated nanoseconds.</summary>
    public long ThrashingLapseNs { get; init; } = 500_000;

    /// <summary><c>uvm_perf_thrashing_nap</c> = 1 × lapse: the length of one throttling period (max 100).</summary>
    public int ThrashingNapLapses { get; init; } = 1;

    /// <summary><c>uvm_perf_thrashing_epoch</c> = 2000 × lapse = 1 s of quiet before a block's state is reset.</summary>
    public int ThrashingEpochLapses { get; init; } = 2000;

    /// <summary><c>uvm_perf_thrashing_pin</c> = 300 × lapse = 150 ms a pin lasts (0 = pinned forever).</summary>
    public int ThrashingPinLapses { get; init; } = 300;

    /// <summary><c>uvm_perf_thrashing_max_resets</c> = 4 resets per block.</summary>
    public int ThrashingMaxResets { get; init; } = 4;

    /// <summary>Throttling period length in ns (nap × lapse).</summary>
    public long ThrashingNapNs => ThrashingNapLapses * ThrashingLapseNs;

    /// <summary>Quiet time after which a block's thrashing state is dropped (epoch × lapse).</summary>
    public long ThrashingEpochNs => ThrashingEpochLapses * ThrashingLapseNs;

    /// <summary>Pin duration in ns (pin × lapse); 0 pins forever.</summary>
    public long ThrashingPinNs => ThrashingPinLapses * ThrashingLapseNs;

    // ---------------------------------------------------------------- prefetch (C.4)

    /// <summary><c>uvm_perf_prefetch_enable</c> = 1.</summary>
    public bool PrefetchEnabled { get; init; } = true;

    /// <summary><c>uvm_perf_prefetch_threshold</c> = 51 %: a subtree is prefetched when occupancy·100 &gt; size·threshold (1–100).</summary>
    public int PrefetchThresholdPercent { get; init; } = 51;

    /// <summary><c>uvm_perf_prefetch_min_faults</c> = 1 fault migration to the same destination before prefetching (1–20).</summary>
    public int PrefetchMinFaults { get; init; } = 1;

    /// <summary>
    /// The GPU is the range's preferred location (cudaMemAdviseSetPreferredLocation): enables C.4's
    /// first-touch rule (a block resident nowhere is populated whole). Off by default: no advice.
    /// </summary>
    public bool GpuPreferred { get; init; }

    /// <summary>Fill every 64 KiB big page holding a faulted page before the tree walk ("grow fault granularity", C.4).</summary>
    public bool PrefetchGrowToBigPages { get; init; } = true;

    // ---------------------------------------------------------------- access counters (C.5)

    /// <summary><c>uvm_perf_access_counter_threshold</c> = 256 accesses per region before a notification (1–65535).</summary>
    public int AccessCounterThreshold { get; init; } = 256;

    /// <summary><c>uvm_perf_access_counter_batch_count</c> = 256 notifications fetched per batch.</summary>
    public int AccessCounterBatchCount { get; init; } = 256;

    /// <summary>
    /// <c>uvm_perf_access_counter_migration_enable</c>: default −1 means "only with ATS"; the simulated
    /// machine has no ATS, so the default here is off. True migrates the notified sub-regions.
    /// </summary>
    public bool AccessCounterMigration { get; init; }

    /// <summary>Whether the GPU is in the range's <c>accessed_by</c> set (C.2 rule 7): faults map remotely, no migration.</summary>
    public bool AccessedBy { get; init; }

    // ---------------------------------------------------------------- oversubscription (C.6)

    /// <summary>
    /// VRAM available to the policy, in 2 MiB root chunks; null = all the device memory the driver
    /// declared. A smaller budget makes oversubscription runs cheap to set up.
    /// </summary>
    public int? VramChunks { get; init; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first parameter outside UVM's allowed range.</summary>
    public UvmPolicyOptions Validate()
    {
        Check(FaultBatchCount >= 1, nameof(FaultBatchCount));
        Check(ReplayPolicy is >= ReplayPolicy.Block and <= ReplayPolicy.Once, nameof(ReplayPolicy));
        Check(ReplayUpdatePutRatioPercent is >= 0 and <= 100, nameof(ReplayUpdatePutRatioPercent));
        Check(MaxBatchesPerService >= 1, nameof(MaxBatchesPerService));
        Check(MaxThrottledBatchesPerService >= 1, nameof(MaxThrottledBatchesPerService));
        Check(ThrashingThreshold is >= 1 and <= 7, nameof(ThrashingThreshold));
        Check(ThrashingPinThreshold is >= 1 and <= 255, nameof(ThrashingPinThreshold));
        Check(ThrashingLapseNs > 0, nameof(ThrashingLapseNs));
        Check(ThrashingNapLapses is >= 1 and <= 100, nameof(ThrashingNapLapses));
        Check(ThrashingEpochLapses >= 1, nameof(ThrashingEpochLapses));
        Check(ThrashingPinLapses >= 0, nameof(ThrashingPinLapses));
        Check(ThrashingMaxResets >= 0, nameof(ThrashingMaxResets));
        Check(PrefetchThresholdPercent is >= 1 and <= 100, nameof(PrefetchThresholdPercent));
        Check(PrefetchMinFaults is >= 1 and <= 20, nameof(PrefetchMinFaults));
        Check(AccessCounterThreshold is >= 1 and <= 65535, nameof(AccessCounterThreshold));
        Check(AccessCounterBatchCount >= 1, nameof(AccessCounterBatchCount));
        Check(VramChunks is null or >= 1, nameof(VramChunks));
        return this;

        static void Check(bool ok, string name)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, "outside the range UVM's module parameter allows (drivers.md C.9)");
        }
    }
}
