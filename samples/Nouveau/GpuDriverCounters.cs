namespace Hmm.Samples.Nouveau;

/// <summary>
/// The GPU driver's statistics: what nouveau could cheaply expose (drivers.md A.12 item 9:
/// faults fetched, duplicates, cancels, replays, pages migrated each way) plus UVM's procfs
/// counters (C.8) and thrashing/prefetch/access-counter statistics (C.3–C.5). Plain atomic
/// counters, readable at any time; <see cref="Snapshot"/> gives a consistent-enough copy for
/// reports and assertions.
/// </summary>
public sealed class GpuDriverCounters
{
    private long _faults, _duplicates, _batches, _replays, _cancels, _serviced, _throttled;
    private long _toVram, _fromVram, _evictions, _evictedPages, _chunks;
    private long _thrashingEvents, _thrashingDetected, _pins, _unpins, _remoteMaps, _resets;
    private long _prefetched, _accessNotifications, _counterMigrations, _bindPages, _exclusive;
    private long _mappedSystem, _mappedVram, _revocations, _freed, _cpuNaps, _cpuNapNs;

    /// <summary>Fault entries fetched from the buffer.</summary>
    public long Faults => Volatile.Read(ref _faults);
    /// <summary>Entries dropped as duplicates of an already-queued page (same instance and page).</summary>
    public long Duplicates => Volatile.Read(ref _duplicates);
    /// <summary>Fault batches serviced.</summary>
    public long Batches => Volatile.Read(ref _batches);
    /// <summary>Replays issued.</summary>
    public long Replays => Volatile.Read(ref _replays);
    /// <summary>Faults cancelled (their channel killed).</summary>
    public long Cancels => Volatile.Read(ref _cancels);
    /// <summary>Unique faulting pages handed to the residency policy (after sorting and de-duplication).</summary>
    public long Serviced => Volatile.Read(ref _serviced);
    /// <summary>Faults skipped by a thrashing THROTTLE hint (re-fault after the replay).</summary>
    public long Throttled => Volatile.Read(ref _throttled);
    /// <summary>Pages migrated system → VRAM (fault-, bind-, prefetch- or counter-driven).</summary>
    public long PagesToVram => Volatile.Read(ref _toVram);
    /// <summary>Pages migrated VRAM → system (CPU touch, eviction, unload).</summary>
    public long PagesFromVram => Volatile.Read(ref _fromVram);
    /// <summary>2 MiB chunks evicted to make room (never counted as thrashing, C.6).</summary>
    public long Evictions => Volatile.Read(ref _evictions);
    /// <summary>Pages moved back to system memory by evictions.</summary>
    public long EvictedPages => Volatile.Read(ref _evictedPages);
    /// <summary>2 MiB VRAM chunks created (nouveau logs each, A.7).</summary>
    public long ChunksCreated => Volatile.Read(ref _chunks);
    /// <summary>Migration or revocation events on a page within the lapse of its previous one (C.3).</summary>
    public long ThrashingEvents => Volatile.Read(ref _thrashingEvents);
    /// <summary>Pages that reached the thrashing threshold.</summary>
    public long ThrashingDetected => Volatile.Read(ref _thrashingDetected);
    /// <summary>Pages pinned after the pin threshold of throttling periods.</summary>
    public long Pins => Volatile.Read(ref _pins);
    /// <summary>Pins expired (remote mappings removed).</summary>
    public long Unpins => Volatile.Read(ref _unpins);
    /// <summary>Faults serviced by mapping system memory remotely instead of migrating.</summary>
    public long RemoteMaps => Volatile.Read(ref _remoteMaps);
    /// <summary>Block thrashing-state resets after an epoch of quiet.</summary>
    public long ThrashingResets => Volatile.Read(ref _resets);
    /// <summary>Pages migrated because the density prefetcher chose them (not faulted themselves).</summary>
    public long PrefetchedPages => Volatile.Read(ref _prefetched);
    /// <summary>Access-counter notifications raised.</summary>
    public long AccessCounterNotifications => Volatile.Read(ref _accessNotifications);
    /// <summary>Pages migrated because of access-counter notifications.</summary>
    public long CounterMigratedPages => Volatile.Read(ref _counterMigrations);
    /// <summary>Pages migrated by the explicit bind ioctl.</summary>
    public long BindPages => Volatile.Read(ref _bindPages);
    /// <summary>Device-exclusive (atomic) faults serviced.</summary>
    public long ExclusiveFaults => Volatile.Read(ref _exclusive);

    /// <summary>GPU PTEs programmed to system memory pages (nouveau's host aperture, A.3 step 8).</summary>
    public long PagesMappedSystem => Volatile.Read(ref _mappedSystem);
    /// <summary>GPU PTEs programmed to this GPU's VRAM pages.</summary>
    public long PagesMappedVram => Volatile.Read(ref _mappedVram);
    /// <summary>Device-exclusive (atomic) mappings revoked by a CPU touch (A.6).</summary>
    public long Revocations => Volatile.Read(ref _revocations);
    /// <summary>VRAM pages whose last reference dropped (dev_pagemap_ops.page_free).</summary>
    public long PagesFreed => Volatile.Read(ref _freed);
    /// <summary>CPU faults on a throttled VRAM page that napped before migrating it back (C.3).</summary>
    public long CpuNaps => Volatile.Read(ref _cpuNaps);
    /// <summary>Simulated nanoseconds those CPU faults slept.</summary>
    public long CpuNapNs => Volatile.Read(ref _cpuNapNs);

    /// <summary>Counts a CPU-fault nap of <paramref name="ns"/>.</summary>
    public void AddCpuNap(long ns)
    {
        Interlocked.Increment(ref _cpuNaps);
        Interlocked.Add(ref _cpuNapNs, ns);
    }

    /// <summary>Counts GPU PTEs to system pages.</summary>
    public void AddMappedSystem(long n) => Interlocked.Add(ref _mappedSystem, n);
    /// <summary>Counts GPU PTEs to VRAM pages.</summary>
    public void AddMappedVram(long n) => Interlocked.Add(ref _mappedVram, n);
    /// <summary>Counts one revoked exclusive mapping.</summary>
    public void AddRevocation() => Interlocked.Increment(ref _revocations);
    /// <summary>Counts one freed VRAM page (atomic context: one interlocked add).</summary>
    public void AddPageFreed() => Interlocked.Increment(ref _freed);

    /// <summary>Counts fetched fault entries.</summary>
    public void AddFaults(long n) => Interlocked.Add(ref _faults, n);
    /// <summary>Counts duplicate entries.</summary>
    public void AddDuplicates(long n) => Interlocked.Add(ref _duplicates, n);
    /// <summary>Counts one batch.</summary>
    public void AddBatch() => Interlocked.Increment(ref _batches);
    /// <summary>Counts one replay.</summary>
    public void AddReplay() => Interlocked.Increment(ref _replays);
    /// <summary>Counts cancels.</summary>
    public void AddCancels(long n) => Interlocked.Add(ref _cancels, n);
    /// <summary>Counts unique faulting pages serviced.</summary>
    public void AddServiced(long pages) => Interlocked.Add(ref _serviced, pages);
    /// <summary>Counts one throttled fault.</summary>
    public void AddThrottled() => Interlocked.Increment(ref _throttled);
    /// <summary>Counts pages migrated to VRAM.</summary>
    public void AddPagesToVram(long n) => Interlocked.Add(ref _toVram, n);
    /// <summary>Counts pages migrated from VRAM.</summary>
    public void AddPagesFromVram(long n) => Interlocked.Add(ref _fromVram, n);
    /// <summary>Counts one chunk eviction of <paramref name="pages"/> resident pages.</summary>
    public void AddEviction(long pages)
    {
        Interlocked.Increment(ref _evictions);
        Interlocked.Add(ref _evictedPages, pages);
    }
    /// <summary>Counts one created chunk.</summary>
    public void AddChunkCreated() => Interlocked.Increment(ref _chunks);
    /// <summary>Counts one thrashing event.</summary>
    public void AddThrashingEvent() => Interlocked.Increment(ref _thrashingEvents);
    /// <summary>Counts one page detected as thrashing.</summary>
    public void AddThrashingDetected() => Interlocked.Increment(ref _thrashingDetected);
    /// <summary>Counts one pin.</summary>
    public void AddPin() => Interlocked.Increment(ref _pins);
    /// <summary>Counts one unpin.</summary>
    public void AddUnpin() => Interlocked.Increment(ref _unpins);
    /// <summary>Counts one remote mapping.</summary>
    public void AddRemoteMap() => Interlocked.Increment(ref _remoteMaps);
    /// <summary>Counts one thrashing reset.</summary>
    public void AddThrashingReset() => Interlocked.Increment(ref _resets);
    /// <summary>Counts prefetched pages.</summary>
    public void AddPrefetched(long n) => Interlocked.Add(ref _prefetched, n);
    /// <summary>Counts one access-counter notification.</summary>
    public void AddAccessCounterNotification() => Interlocked.Increment(ref _accessNotifications);
    /// <summary>Counts pages migrated by access counters.</summary>
    public void AddCounterMigrated(long n) => Interlocked.Add(ref _counterMigrations, n);
    /// <summary>Counts pages migrated by bind.</summary>
    public void AddBindPages(long n) => Interlocked.Add(ref _bindPages, n);
    /// <summary>Counts one exclusive (atomic) fault.</summary>
    public void AddExclusive() => Interlocked.Increment(ref _exclusive);

    /// <summary>A copy of every counter.</summary>
    public GpuCounterSnapshot Snapshot() => new(
        Faults, Duplicates, Batches, Replays, Cancels, Serviced, Throttled, PagesToVram, PagesFromVram,
        Evictions, EvictedPages, ChunksCreated, ThrashingEvents, ThrashingDetected, Pins, Unpins, RemoteMaps,
        ThrashingResets, PrefetchedPages, AccessCounterNotifications, CounterMigratedPages, BindPages, ExclusiveFaults,
        PagesMappedSystem, PagesMappedVram, Revocations, PagesFreed)
    {
        CpuNaps = CpuNaps,
        CpuNapNs = CpuNapNs,
    };

    /// <inheritdoc/>
    public override string ToString() => Snapshot().ToString();
}

/// <summary>A copy of <see cref="GpuDriverCounters"/> at one moment (records compare by value: handy in tests and JSON).</summary>
public readonly record struct GpuCounterSnapshot(
    long Faults, long Duplicates, long Batches, long Replays, long Cancels, long Serviced, long Throttled,
    long PagesToVram, long PagesFromVram, long Evictions, long EvictedPages, long ChunksCreated,
    long ThrashingEvents, long ThrashingDetected, long Pins, long Unpins, long RemoteMaps, long ThrashingResets,
    long PrefetchedPages, long AccessCounterNotifications, long CounterMigratedPages, long BindPages, long ExclusiveFaults,
    long PagesMappedSystem, long PagesMappedVram, long Revocations, long PagesFreed)
{
    /// <summary>CPU faults that napped on a throttled page before migrating it back (C.3).</summary>
    public long CpuNaps { get; init; }

    /// <summary>Simulated nanoseconds those naps took.</summary>
    public long CpuNapNs { get; init; }
}
