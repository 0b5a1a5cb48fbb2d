using Hmm.Dsl;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;

namespace Hmm.Samples.Nouveau;

/// <summary>Which residency policy the GPU driver runs.</summary>
public enum GpuPolicyMode
{
    /// <summary>nouveau (drivers.md A): map in place, never migrate on fault; bind migrates; atomics go device-exclusive.</summary>
    Nouveau = 0,

    /// <summary>NVIDIA UVM-style (drivers.md C): migrate on fault with density prefetch, thrashing mitigation, LRU eviction, access counters.</summary>
    Uvm = 1,
}

/// <summary>The policy's decision for one fault range: the DSL's <see cref="FaultAction"/>, or a thrashing throttle.</summary>
/// <param name="Action">What to do when not throttled.</param>
/// <param name="Throttled">
/// UVM's THROTTLE hint: skip the fault in this batch (its thread re-faults after the replay, C.3 phase 1).
/// <see cref="Action"/> is then <see cref="FaultAction.MapInPlace"/> as a safe fallback for a caller that cannot defer.
/// </param>
/// <param name="ThrottleUntilNs">End of the throttling period when throttled.</param>
public readonly record struct ResidencyDecision(FaultAction Action, bool Throttled = false, long ThrottleUntilNs = 0)
{
    /// <summary>Map the CPU's pages where they are.</summary>
    public static ResidencyDecision MapInPlace => new(FaultAction.MapInPlace);
}

/// <summary>
/// The GPU driver's residency policy, in one object the driver's <c>[FaultPolicy]</c> callback
/// consults: nouveau mode (the default; A.3 step 10, A.6) or the opt-in UVM mode (C.2–C.6) with
/// its <see cref="UvmPolicyOptions"/>. Owns the thrashing detector, the access counters, the LRU
/// of resident 2 MiB blocks and the per-block fault-migration counts the prefetcher's <c>min_faults</c> rule
/// needs, all counting into one <see cref="GpuDriverCounters"/>. Switching mode or options at run
/// time is allowed (the property test does it): the UVM state is rebuilt from scratch (the resident blocks are kept: VRAM contents do not change).
/// </summary>
/// <remarks>Not thread-safe: the driver consults it under its update lock (svmm->mutex).</remarks>
public sealed class GpuResidencyPolicy
{
    private readonly Dictionary<ulong, int> _faultMigrations = [];
    private UvmPolicyOptions _options;

    /// <summary>A policy in <paramref name="mode"/> for a device of <paramref name="vramChunks"/> 2 MiB chunks.</summary>
    public GpuResidencyPolicy(int vramChunks, GpuDriverCounters counters, GpuPolicyMode mode = GpuPolicyMode.Nouveau, UvmPolicyOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vramChunks);
        DeviceChunks = vramChunks;
        Counters = counters;
        Mode = mode;
        _options = (options ?? UvmPolicyOptions.Default).Validate();
        Blocks = new ResidentBlocks(vramChunks);
        Thrashing = new ThrashingDetector(_options, counters);
        AccessCounters = new AccessCounters(_options.AccessCounterThreshold, counters);
        Replay = mode == GpuPolicyMode.Uvm ? ReplayController.For(_options) : ReplayController.Nouveau;
    }

    /// <summary>The active mode.</summary>
    public GpuPolicyMode Mode { get; private set; }

    /// <summary>The UVM tunables (used in <see cref="GpuPolicyMode.Uvm"/>).</summary>
    public UvmPolicyOptions Options => _options;

    /// <summary>The driver's counters.</summary>
    public GpuDriverCounters Counters { get; }

    /// <summary>2 MiB chunks the device has.</summary>
    public int DeviceChunks { get; }

    /// <summary>
    /// 2 MiB chunks the policy lets the driver allocate before evicting: the device's in nouveau
    /// mode (which never evicts at run time, A.10), <see cref="UvmPolicyOptions.VramChunks"/> if set in UVM mode.
    /// </summary>
    public int ChunkBudget => Mode == GpuPolicyMode.Uvm && _options.VramChunks is int c ? Math.Min(c, DeviceChunks) : DeviceChunks;

    /// <summary>VA blocks holding VRAM pages, least recently used first (UVM mode evicts the oldest).</summary>
    public ResidentBlocks Blocks { get; }

    /// <summary>Thrashing detection (UVM mode).</summary>
    public ThrashingDetector Thrashing { get; private set; }

    /// <summary>Access counters (UVM mode).</summary>
    public AccessCounters AccessCounters { get; private set; }

    /// <summary>The replay policy for the current mode.</summary>
    public ReplayController Replay;

    /// <summary>Switches mode and/or options; UVM state (thrashing, counters, prefetch history) starts afresh, the resident blocks are kept.</summary>
    public void Switch(GpuPolicyMode mode, UvmPolicyOptions? options = null)
    {
        Mode = mode;
        _options = (options ?? _options).Validate();
        Thrashing = new ThrashingDetector(_options, Counters);
        AccessCounters = new AccessCounters(_options.AccessCounterThreshold, Counters);
        _faultMigrations.Clear();
        Replay = mode == GpuPolicyMode.Uvm ? ReplayController.For(_options) : ReplayController.Nouveau;
    }

    /// <summary>
    /// nouveau's rule (A.3 step 10, A.6): a GPU fault maps whatever the CPU page table holds —
    /// never migrates — and an atomic takes a device-exclusive entry.
    /// </summary>
    public static FaultAction NouveauDecision(in FaultRange fault) => fault.Atomic ? FaultAction.Exclusive : FaultAction.MapInPlace;

    /// <summary>
    /// The decision for a GPU fault on <paramref name="fault"/> at simulated time <paramref name="nowNs"/>.
    /// nouveau mode: <see cref="NouveauDecision"/>. UVM mode, in C.2's order: accessed_by → map
    /// remotely (rule 7); a thrashing PIN → remote map (exclusive for atomics) at the pinned system
    /// residency (rule 5); a THROTTLE → skip this batch; otherwise migrate to the faulting GPU
    /// (rules 6 and 10: no preferred location is set).
    /// </summary>
    public ResidencyDecision Decide(in FaultRange fault, long nowNs)
    {
        if (Mode == GpuPolicyMode.Nouveau) return new ResidencyDecision(NouveauDecision(fault));
        if (fault.PrefetchOnly) return ResidencyDecision.MapInPlace; // a HW prefetch never faults pages in
        if (_options.AccessedBy)
        {
            Counters.AddRemoteMap();
            return new ResidencyDecision(fault.Atomic ? FaultAction.Exclusive : FaultAction.RemoteMap);
        }
        // Every page of the range is asked (each keeps its own throttling periods and pin); the
        // range follows its strongest hint, since it is serviced as one.
        var strongest = ThrashingHint.None;
        for (ulong va = fault.Start; va < fault.End; va += Page.Size)
        {
            var hint = Thrashing.GetHint(va, ProcessorIds.Gpu, nowNs);
            if (hint.Kind > strongest.Kind) strongest = hint;
        }
        // A pin covers the range's other thrashing pages too (UVM's pin mask over the serviced region).
        if (strongest.Kind == ThrashingHintKind.Pin)
            for (ulong va = fault.Start; va < fault.End; va += Page.Size) Thrashing.JoinPin(va, in strongest, nowNs);
        switch (strongest.Kind)
        {
            case ThrashingHintKind.Pin when strongest.Residency == ProcessorIds.Cpu:
                Counters.AddRemoteMap();
                return new ResidencyDecision(fault.Atomic ? FaultAction.Exclusive : FaultAction.RemoteMap);
            case ThrashingHintKind.Throttle:
                Counters.AddThrottled();
                return new ResidencyDecision(FaultAction.MapInPlace, Throttled: true, strongest.UntilNs);
            default:
                return new ResidencyDecision(FaultAction.MigrateToDevice);
        }
    }

    /// <summary>
    /// The CPU's hint when it faults on a VRAM page at <paramref name="va"/> (C.3): throttling makes
    /// the CPU fault handler nap until the period ends (returned as the ns to sleep, 0 = go on).
    /// </summary>
    public long CpuNapNs(ulong va, long nowNs)
    {
        if (Mode != GpuPolicyMode.Uvm) return 0;
        var hint = Thrashing.GetHint(va, ProcessorIds.Cpu, nowNs);
        return hint.Kind == ThrashingHintKind.Throttle ? Math.Max(0, hint.UntilNs - nowNs) : 0;
    }

    /// <summary>
    /// The pages to prefetch along with <paramref name="faulted"/> in the 2 MiB block at
    /// <paramref name="blockVa"/> when migrating to the GPU (C.4). Empty in nouveau mode, when
    /// prefetch is disabled, or before the block saw <c>min_faults</c> fault migrations.
    /// <paramref name="residentAnywhere"/> false with the GPU as preferred location is C.4's first
    /// touch: the whole allowed block is populated at once.
    /// </summary>
    public BlockMask Prefetch(ulong blockVa, in BlockMask faulted, in BlockMask residentOnGpu, in BlockMask allowed, bool residentAnywhere, long nowNs)
    {
        if (Mode != GpuPolicyMode.Uvm || !_options.PrefetchEnabled) return default;
        ulong key = blockVa >> Page.PmdShift;
        _faultMigrations.TryGetValue(key, out int migrations);
        migrations++;
        _faultMigrations[key] = migrations;
        if (migrations < _options.PrefetchMinFaults) return default;
        var thrashing = default(BlockMask);
        Thrashing.ThrashingPages(blockVa, nowNs, ref thrashing);
        if (!residentAnywhere && _options.GpuPreferred && thrashing.IsEmpty())
            return DensityPrefetcher.FirstTouch(faulted, allowed);
        return DensityPrefetcher.Compute(residentOnGpu, faulted, thrashing, allowed, _options.PrefetchThresholdPercent, _options.PrefetchGrowToBigPages);
    }

    /// <summary>
    /// Records that [<paramref name="start"/>, <paramref name="end"/>) moved toward
    /// <paramref name="processor"/> for <paramref name="cause"/> (feeds thrashing detection; evictions are ignored).
    /// </summary>
    public void RecordMigration(ulong start, ulong end, int processor, long nowNs, ThrashingCause cause)
    {
        if (Mode != GpuPolicyMode.Uvm) return;
        for (ulong va = Page.AlignDown(start); va < end; va += Page.Size)
            Thrashing.RecordEvent(va, processor, nowNs, cause);
    }

    /// <summary>Whether allocating one more chunk needs an eviction first (UVM mode only; nouveau just fails, A.7).</summary>
    public bool MustEvict(int allocatedChunks) => Mode == GpuPolicyMode.Uvm && allocatedChunks >= ChunkBudget;
}
