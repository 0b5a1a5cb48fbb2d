using Hmm.Runtime.Memory;

namespace Hmm.Samples.Nouveau;

/// <summary>
/// One access-counter notification (UVM_ACCESS_COUNTER_BUFFER_ENTRY, drivers.md C.5): the 2 MiB
/// region, which of its 32 64-KiB sub-regions were touched, the count that crossed the
/// threshold and when.
/// </summary>
/// <param name="RegionVa">2 MiB-aligned start of the region.</param>
/// <param name="SubRegionMask">Bit <c>s</c> set: sub-region <c>[RegionVa + s·64 KiB, +64 KiB)</c> was accessed.</param>
/// <param name="Count">The count that reached the threshold.</param>
/// <param name="TimestampNs">Simulated time of the notification.</param>
public readonly record struct AccessCounterNotification(ulong RegionVa, uint SubRegionMask, int Count, long TimestampNs)
{
    /// <summary>The pages of the block the touched sub-regions cover (what counter-driven migration moves).</summary>
    public BlockMask Pages()
    {
        var m = default(BlockMask);
        for (int s = 0; s < AccessCounters.SubRegions; s++)
            if ((SubRegionMask & (1u << s)) != 0) m.Fill(s * AccessCounters.SubRegionPages, (s + 1) * AccessCounters.SubRegionPages);
        return m;
    }
}

/// <summary>
/// The GPU's access counters (uvm_gpu_access_counters.c, drivers.md C.5): hardware counts the
/// GPU's <i>remote</i> accesses (to memory it maps but that is not resident in its VRAM) per
/// 2 MiB region, remembering which 64 KiB sub-regions were touched; when a region's count reaches
/// the threshold (256 by default) a notification is written to a buffer and the region's counter
/// restarts. The driver fetches notifications in batches and, if counter-driven migration is on,
/// migrates the touched sub-regions toward the GPU.
/// </summary>
/// <remarks>
/// The notification buffer is a fixed ring (<see cref="BufferEntries"/>); a full ring drops the
/// notification and counts it in <see cref="Dropped"/>, as hardware would overflow. Single
/// producer/consumer under the driver's lock; allocation-free after the first touch of a region.
/// </remarks>
public sealed class AccessCounters
{
    /// <summary>Tracking granularity: 2 MiB.</summary>
    public const ulong RegionBytes = Page.PmdSize;

    /// <summary>Sub-regions per region: 32.</summary>
    public const int SubRegions = 32;

    /// <summary>Pages per sub-region: 16 (64 KiB).</summary>
    public const int SubRegionPages = Page.PmdPages / SubRegions;

    /// <summary>Notification ring entries.</summary>
    public const int BufferEntries = 4096;

    private readonly Dictionary<ulong, Region> _regions = [];
    private readonly AccessCounterNotification[] _ring = new AccessCounterNotification[BufferEntries];
    private readonly GpuDriverCounters _counters;
    private long _get, _put;

    /// <summary>Counters with <paramref name="threshold"/> accesses per notification (1–65535).</summary>
    public AccessCounters(int threshold, GpuDriverCounters counters)
    {
        if (threshold is < 1 or > 65535) throw new ArgumentOutOfRangeException(nameof(threshold), "UVM allows 1–65535 (drivers.md C.9)");
        Threshold = threshold;
        _counters = counters;
    }

    /// <summary>Accesses per region that raise a notification.</summary>
    public int Threshold { get; }

    /// <summary>Notifications waiting to be fetched.</summary>
    public int Pending => (int)(_put - _get);

    /// <summary>Notifications dropped because the ring was full.</summary>
    public long Dropped { get; private set; }

    /// <summary>Remote accesses counted.</summary>
    public long Accesses { get; private set; }

    /// <summary>Counts one remote access at <paramref name="va"/>; returns true when it raised a notification.</summary>
    public bool RecordAccess(ulong va, long nowNs)
    {
        Accesses++;
        ulong key = va / RegionBytes;
        if (!_regions.TryGetValue(key, out var region))
        {
            region = new Region();
            _regions.Add(key, region);
        }
        region.Count++;
        region.SubRegions |= 1u << (int)((va % RegionBytes) >> 16);
        if (region.Count < Threshold) return false;

        var n = new AccessCounterNotification(key * RegionBytes, region.SubRegions, region.Count, nowNs);
        region.Count = 0;
        region.SubRegions = 0;
        _counters.AddAccessCounterNotification();
        if (_put - _get == _ring.Length)
        {
            Dropped++;
            return true;
        }
        _ring[_put % _ring.Length] = n;
        _put++;
        return true;
    }

    /// <summary>Fetches up to <paramref name="batch"/>.Length notifications (the batch count), oldest first; returns the count.</summary>
    public int Fetch(Span<AccessCounterNotification> batch)
    {
        int n = (int)Math.Min(batch.Length, _put - _get);
        for (int i = 0; i < n; i++) batch[i] = _ring[(_get + i) % _ring.Length];
        _get += n;
        return n;
    }

    /// <summary>The current (not yet notified) count of the region holding <paramref name="va"/>.</summary>
    public int CountOf(ulong va) => _regions.TryGetValue(va / RegionBytes, out var r) ? r.Count : 0;

    /// <summary>Clears every region's counter (UVM's "clear all" after servicing a batch, or on a policy switch).</summary>
    public void ClearAll()
    {
        foreach (var r in _regions.Values)
        {
            r.Count = 0;
            r.SubRegions = 0;
        }
    }

    private sealed class Region
    {
        public int Count;
        public uint SubRegions;
    }
}
