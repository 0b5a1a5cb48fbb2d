using Hmm.Runtime.Memory;

namespace Hmm.Samples.Nouveau;

/// <summary>Processor ids the policy tracks (UVM's uvm_processor_id_t): the CPU is 0, GPUs from 1; at most 8.</summary>
public static class ProcessorIds
{
    /// <summary>The CPU (system memory's owner).</summary>
    public const int Cpu = 0;

    /// <summary>The first (simulated) GPU.</summary>
    public const int Gpu = 1;

    /// <summary>Processors a page's mask can name.</summary>
    public const int Max = 8;
}

/// <summary>What caused a residency event reported to the <see cref="ThrashingDetector"/> (C.3).</summary>
public enum ThrashingCause : byte
{
    /// <summary>A migration caused by a replayable (GPU) or CPU fault: counts.</summary>
    FaultMigration,
    /// <summary>A migration driven by access counters: counts.</summary>
    AccessCounterMigration,
    /// <summary>A migration the prefetcher added: counts.</summary>
    PrefetchMigration,
    /// <summary>A permission downgrade (e.g. device-exclusive revoked by a CPU touch): counts.</summary>
    Revocation,
    /// <summary>An eviction to make room in VRAM: ignored (C.6: eviction-caused migrations are excluded).</summary>
    Eviction,
    /// <summary>A user hint or explicit bind: resets the page's tracking (C.3: other causes reset).</summary>
    UserHint,
}

/// <summary>The thrashing module's advice for one access (uvm_perf_thrashing_hint_type_t).</summary>
public enum ThrashingHintKind : byte
{
    /// <summary>No thrashing: proceed normally.</summary>
    None,
    /// <summary>Phase 1: skip this fault until <see cref="ThrashingHint.UntilNs"/> (GPU: re-fault after replay; CPU: sleep).</summary>
    Throttle,
    /// <summary>Phase 2: the page is pinned at <see cref="ThrashingHint.Residency"/>; others map it remotely.</summary>
    Pin,
}

/// <summary>One thrashing hint: kind, the end of the throttling period or pin, and the pinned residency.</summary>
public readonly record struct ThrashingHint(ThrashingHintKind Kind, long UntilNs = 0, int Residency = ProcessorIds.Cpu)
{
    /// <summary>No hint.</summary>
    public static ThrashingHint None => default;
}

/// <summary>
/// NVIDIA UVM's thrashing detection and mitigation (uvm_perf_thrashing.c, drivers.md C.3) over
/// simulated time. Per page: the last event time, a saturating count of consecutive events within
/// the lapse, the processors involved, the throttling period and the pin. A page whose count
/// reaches <see cref="UvmPolicyOptions.ThrashingThreshold"/> is thrashing; while it thrashes, one
/// processor per period of <see cref="UvmPolicyOptions.ThrashingNapNs"/> is left alone (alternating
/// between periods) and the others are throttled; after
/// <see cref="UvmPolicyOptions.ThrashingPinThreshold"/> periods the page is pinned to a location
/// every thrashing processor reaches (system memory when the CPU is involved) for
/// <see cref="UvmPolicyOptions.ThrashingPinNs"/>; after <see cref="UvmPolicyOptions.ThrashingEpochNs"/>
/// without thrashing and with nothing pinned, a block's state is dropped (at most
/// <see cref="UvmPolicyOptions.ThrashingMaxResets"/> times). Evictions never count.
/// </summary>
/// <remarks>
/// Simplification (said here so nobody mistakes it for UVM): UVM allocates per-page state only
/// after two consecutive events on a block from different processors; this detector allocates a
/// block's state on its first event. The adaptive lapse (vote threshold 32) is not modelled: the
/// lapse is always the configured one, as UVM does when the user sets it explicitly.
/// Not thread-safe: the driver calls it under its update lock, as UVM does under the block lock.
/// After warm-up (one state object per 2 MiB block touched) it allocates nothing.
/// </remarks>
public sealed class ThrashingDetector
{
    private readonly UvmPolicyOptions _options;
    private readonly GpuDriverCounters _counters;
    private readonly Dictionary<ulong, BlockState> _blocks = [];

    /// <summary>Creates a detector with <paramref name="options"/>, counting into <paramref name="counters"/>.</summary>
    public ThrashingDetector(UvmPolicyOptions options, GpuDriverCounters counters)
    {
        _options = options.Validate();
        _counters = counters;
    }

    /// <summary>Pages currently pinned.</summary>
    public int PinnedPages { get; private set; }

    /// <summary>
    /// Records a migration or revocation of the page at <paramref name="va"/> toward or by
    /// <paramref name="processor"/> at simulated time <paramref name="nowNs"/>.
    /// </summary>
    public void RecordEvent(ulong va, int processor, long nowNs, ThrashingCause cause)
    {
        if (!_options.ThrashingEnabled || cause == ThrashingCause.Eviction) return;
        var block = BlockFor(va, nowNs, create: true)!;
        int i = PageIndex(va);
        if (cause == ThrashingCause.UserHint)
        {
            if (!block.Pinned[i]) block.ClearPage(i);
            return;
        }
        bool hadEvent = block.LastEventNs[i] >= 0;
        bool withinLapse = hadEvent && nowNs - block.LastEventNs[i] < _options.ThrashingLapseNs;
        block.LastEventNs[i] = nowNs;
        block.Processors[i] |= (byte)(1 << processor);
        if (!withinLapse)
        {
            // A gap longer than the lapse ends the run of consecutive events (the throttling
            // periods already counted survive until the block's epoch reset).
            block.Events[i] = 1;
            return;
        }
        _counters.AddThrashingEvent();
        block.LastThrashingNs = nowNs;
        if (block.Events[i] < 7) block.Events[i]++;   // a 3-bit saturating counter in UVM
        if (block.Events[i] == _options.ThrashingThreshold) _counters.AddThrashingDetected();
    }

    /// <summary>Whether the page at <paramref name="va"/> is currently thrashing (prefetch excludes such pages, C.4).</summary>
    public bool IsThrashing(ulong va, long nowNs)
    {
        var block = BlockFor(va, nowNs, create: false);
        if (block == null) return false;
        int i = PageIndex(va);
        return block.Pinned[i] || block.Events[i] >= _options.ThrashingThreshold;
    }

    /// <summary>Whether the page at <paramref name="va"/> is pinned (its others map it remotely).</summary>
    public bool IsPinned(ulong va, long nowNs)
    {
        var block = BlockFor(va, nowNs, create: false);
        return block != null && block.Pinned[PageIndex(va)];
    }

    /// <summary>Marks the thrashing pages of the 2 MiB block at <paramref name="blockVa"/> in <paramref name="mask"/>.</summary>
    public void ThrashingPages(ulong blockVa, long nowNs, ref BlockMask mask)
    {
        var block = BlockFor(blockVa, nowNs, create: false);
        if (block == null) return;
        for (int i = 0; i < Page.PmdPages; i++)
            if (block.Pinned[i] || block.Events[i] >= _options.ThrashingThreshold) mask.Set(i);
    }

    /// <summary>
    /// The hint for <paramref name="processor"/> about to migrate or map the page at <paramref name="va"/>
    /// (uvm_perf_thrashing_get_hint): None, Throttle until the period ends, or Pin.
    /// </summary>
    public ThrashingHint GetHint(ulong va, int processor, long nowNs)
    {
        if (!_options.ThrashingEnabled) return ThrashingHint.None;
        var block = BlockFor(va, nowNs, create: false);
        if (block == null) return ThrashingHint.None;
        int i = PageIndex(va);
        if (block.Pinned[i])
        {
            if (_options.ThrashingPinNs == 0 || nowNs < block.PinnedUntilNs[i])
                return new ThrashingHint(ThrashingHintKind.Pin, block.PinnedUntilNs[i], block.PinnedResidency[i]);
            Unpin(block, i);
            return ThrashingHint.None;
        }
        if (block.Events[i] < _options.ThrashingThreshold) return ThrashingHint.None;

        // Thrashing is still being seen on this block: the epoch of quiet starts over.
        block.LastThrashingNs = nowNs;
        block.Processors[i] |= (byte)(1 << processor);
        if (nowNs >= block.ThrottleEndNs[i])
        {
            // A new throttling period: count it, pin after the pin threshold, else pick who runs free.
            block.ThrottleCount[i]++;
            if (block.ThrottleCount[i] >= _options.ThrashingPinThreshold)
            {
                int residency = (block.Processors[i] & (1 << ProcessorIds.Cpu)) != 0 ? ProcessorIds.Cpu : processor;
                block.Pinned[i] = true;
                block.PinnedResidency[i] = (byte)residency;
                block.PinnedUntilNs[i] = _options.ThrashingPinNs == 0 ? long.MaxValue : nowNs + _options.ThrashingPinNs;
                block.ThrottleCount[i] = 0;
                block.PinnedCount++;
                PinnedPages++;
                _counters.AddPin();
                return new ThrashingHint(ThrashingHintKind.Pin, block.PinnedUntilNs[i], residency);
            }
            block.ThrottleEndNs[i] = nowNs + _options.ThrashingNapNs;
            block.Exempt[i] = NextExempt(block.Processors[i], block.Exempt[i], processor, first: block.ThrottleCount[i] == 1);
        }
        return block.Exempt[i] == processor ? ThrashingHint.None : new ThrashingHint(ThrashingHintKind.Throttle, block.ThrottleEndNs[i]);
    }

    /// <summary>
    /// Expires every pin whose time has come (UVM's delayed unpin work) and writes the pages'
    /// addresses to <paramref name="unpinned"/> so the driver can remove their remote mappings (the
    /// next access faults and re-evaluates). Returns the count written; call again if it filled the span.
    /// </summary>
    public int CollectExpiredPins(long nowNs, Span<ulong> unpinned)
    {
        int n = 0;
        if (PinnedPages == 0 || _options.ThrashingPinNs == 0) return 0;
        foreach (var (blockIndex, block) in _blocks)
        {
            if (block.PinnedCount == 0) continue;
            for (int i = 0; i < Page.PmdPages && n < unpinned.Length; i++)
            {
                if (!block.Pinned[i] || nowNs < block.PinnedUntilNs[i]) continue;
                Unpin(block, i);
                unpinned[n++] = (blockIndex << Page.PmdShift) + ((ulong)i << Page.Shift);
            }
            if (n == unpinned.Length) break;
        }
        return n;
    }

    /// <summary>Thrashing-state resets done so far on the block holding <paramref name="va"/>.</summary>
    public int ResetsOf(ulong va) => _blocks.TryGetValue(va >> Page.PmdShift, out var b) ? b.Resets : 0;

    /// <summary>Consecutive in-lapse events recorded for the page at <paramref name="va"/> (0 if untracked).</summary>
    public int EventsOf(ulong va) => _blocks.TryGetValue(va >> Page.PmdShift, out var b) ? b.Events[PageIndex(va)] : 0;

    /// <summary>Throttling periods counted for the page at <paramref name="va"/> since it last pinned or reset.</summary>
    public int ThrottlePeriodsOf(ulong va) => _blocks.TryGetValue(va >> Page.PmdShift, out var b) ? b.ThrottleCount[PageIndex(va)] : 0;

    /// <summary>
    /// Extends <paramref name="pin"/> (a Pin hint another page of the same serviced region got) to
    /// the page at <paramref name="va"/> when it is thrashing too and not pinned yet: UVM hands its
    /// pin as a mask over the region being serviced, so pages that thrash together are pinned
    /// together. Without it a page mapped remotely only because its coalesced neighbour pinned
    /// would never migrate again, so never reach its own pin. Returns whether it pinned the page.
    /// </summary>
    public bool JoinPin(ulong va, in ThrashingHint pin, long nowNs)
    {
        if (!_options.ThrashingEnabled || pin.Kind != ThrashingHintKind.Pin) return false;
        var block = BlockFor(va, nowNs, create: false);
        if (block == null) return false;
        int i = PageIndex(va);
        if (block.Pinned[i] || block.Events[i] < _options.ThrashingThreshold) return false;
        block.Pinned[i] = true;
        block.PinnedResidency[i] = (byte)pin.Residency;
        block.PinnedUntilNs[i] = pin.UntilNs;
        block.ThrottleCount[i] = 0;
        block.PinnedCount++;
        PinnedPages++;
        _counters.AddPin();
        return true;
    }

    private void Unpin(BlockState block, int i)
    {
        block.ClearPage(i);
        block.PinnedCount--;
        PinnedPages--;
        _counters.AddUnpin();
    }

    /// <summary>The next "do not throttle" processor: the requester opens the first period, then the exemption rotates.</summary>
    private static byte NextExempt(byte mask, byte previous, int requester, bool first)
    {
        if (first) return (byte)requester;
        for (int k = 1; k <= ProcessorIds.Max; k++)
        {
            int p = (previous + k) % ProcessorIds.Max;
            if ((mask & (1 << p)) != 0) return (byte)p;
        }
        return (byte)requester;
    }

    private static int PageIndex(ulong va) => (int)(va >> Page.Shift) & (Page.PmdPages - 1);

    /// <summary>The block's state, after dropping it if it has been quiet for an epoch (and may still be reset).</summary>
    private BlockState? BlockFor(ulong va, long nowNs, bool create)
    {
        ulong key = va >> Page.PmdShift;
        if (!_blocks.TryGetValue(key, out var block))
        {
            if (!create) return null;
            block = new BlockState();
            _blocks.Add(key, block);
            return block;
        }
        if (block.PinnedCount == 0 && block.Resets < _options.ThrashingMaxResets
            && block.LastThrashingNs >= 0 && nowNs - block.LastThrashingNs >= _options.ThrashingEpochNs)
        {
            block.Reset();
            _counters.AddThrashingReset();
        }
        return block;
    }

    /// <summary>Per-2 MiB-block thrashing state (UVM's block_thrashing_info_t with its page array), struct-of-arrays.</summary>
    private sealed class BlockState
    {
        public readonly long[] LastEventNs = new long[Page.PmdPages];
        public readonly byte[] Events = new byte[Page.PmdPages];
        public readonly byte[] Processors = new byte[Page.PmdPages];
        public readonly long[] ThrottleEndNs = new long[Page.PmdPages];
        public readonly byte[] ThrottleCount = new byte[Page.PmdPages];
        public readonly byte[] Exempt = new byte[Page.PmdPages];
        public readonly bool[] Pinned = new bool[Page.PmdPages];
        public readonly byte[] PinnedResidency = new byte[Page.PmdPages];
        public readonly long[] PinnedUntilNs = new long[Page.PmdPages];
        public long LastThrashingNs = -1;
        public int PinnedCount;
        public int Resets;

        public BlockState() => LastEventNs.AsSpan().Fill(-1);

        public void ClearPage(int i)
        {
            LastEventNs[i] = -1;
            Events[i] = 0;
            Processors[i] = 0;
            ThrottleEndNs[i] = 0;
            ThrottleCount[i] = 0;
            Exempt[i] = 0;
            Pinned[i] = false;
            PinnedUntilNs[i] = 0;
        }

        /// <summary>Drops every page's state (nothing is pinned when this runs).</summary>
        public void Reset()
        {
            LastEventNs.AsSpan().Fill(-1);
            Events.AsSpan().Clear();
            Processors.AsSpan().Clear();
            ThrottleEndNs.AsSpan().Clear();
            ThrottleCount.AsSpan().Clear();
            Exempt.AsSpan().Clear();
            LastThrashingNs = -1;
            Resets++;
        }
    }
}
