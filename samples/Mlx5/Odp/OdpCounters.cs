namespace Hmm.Samples.Mlx5;

/// <summary>
/// The per-MR ODP statistics of <c>struct ib_odp_counters</c> (drivers.md B.10, exported by
/// <c>rdma stat mr</c>), plus the driver-internal figures the F.2 demos show (UMR zaps, dirty pages,
/// sequence retries, the responder prefetch window, p2p vs fallback pages). Lock-free: faults,
/// invalidations and prefetch work update it concurrently.
/// </summary>
public sealed class OdpCounters
{
    private long _pageFaults, _pageFaultsHandled, _pageInvalidations, _pageInvalidationsHandled, _pagePrefetch;
    private long _zapUmrs, _zappedEntries, _dirtied, _retries, _resumesWithError, _resumesRetry, _prefetchWindowPages;
    private long _p2pPages, _fallbackPages, _staleTranslations, _childrenCreated, _childrenReaped, _nullKeyFaults;

    /// <summary>page_faults: pages mapped by fault handling.</summary>
    public long PageFaults => Volatile.Read(ref _pageFaults);

    /// <summary>page_faults_handled: fault operations.</summary>
    public long PageFaultsHandled => Volatile.Read(ref _pageFaultsHandled);

    /// <summary>page_invalidations: pages zapped.</summary>
    public long PageInvalidations => Volatile.Read(ref _pageInvalidations);

    /// <summary>page_invalidations_handled: invalidation operations that zapped something.</summary>
    public long PageInvalidationsHandled => Volatile.Read(ref _pageInvalidationsHandled);

    /// <summary>page_prefetch: pages mapped by advise_mr.</summary>
    public long PagePrefetch => Volatile.Read(ref _pagePrefetch);

    /// <summary>UMR ZAP|ATOMIC work requests posted by invalidations (one per flushed run).</summary>
    public long ZapUmrs => Volatile.Read(ref _zapUmrs);

    /// <summary>MTT entries written empty by those UMRs (8-aligned flushes may cover entries already empty).</summary>
    public long ZappedEntries => Volatile.Read(ref _zappedEntries);

    /// <summary>Pages marked dirty on unmap because the NIC could write them.</summary>
    public long DirtyPages => Volatile.Read(ref _dirtied);

    /// <summary>Faults resumed without error after racing an invalidation (-EAGAIN/-EBUSY: the HW retries).</summary>
    public long FaultRetries => Volatile.Read(ref _retries);

    /// <summary>Faults resumed with the error flag (the QP moves to error).</summary>
    public long ResumesWithError => Volatile.Read(ref _resumesWithError);

    /// <summary>Faults resumed without error but unserved (raced): the hardware replays the access.</summary>
    public long ResumesToRetry => Volatile.Read(ref _resumesRetry);

    /// <summary>Pages mapped by the RDMA responder's post-resume prefetch window (B.5.7).</summary>
    public long PrefetchWindowPages => Volatile.Read(ref _prefetchWindowPages);

    /// <summary>Pages mapped peer-to-peer (MTT entry = a peer BAR address).</summary>
    public long P2pPages => Volatile.Read(ref _p2pPages);

    /// <summary>Peer pages that could not be mapped p2p and were faulted again without p2p (migrate-to-RAM).</summary>
    public long FallbackPages => Volatile.Read(ref _fallbackPages);

    /// <summary>DMA accesses whose translation disagreed with the CPU page table (must stay 0: the model check).</summary>
    public long StaleTranslations => Volatile.Read(ref _staleTranslations);

    /// <summary>Implicit ODP children created lazily.</summary>
    public long ChildrenCreated => Volatile.Read(ref _childrenCreated);

    /// <summary>Implicit ODP children destroyed after their last page was invalidated.</summary>
    public long ChildrenReaped => Volatile.Read(ref _childrenReaped);

    /// <summary>Faults on an implicit MR slot whose KSM entry still pointed at the null mkey.</summary>
    public long NullKeyFaults => Volatile.Read(ref _nullKeyFaults);

    internal void AddFault(long pages)
    {
        Interlocked.Add(ref _pageFaults, pages);
        Interlocked.Increment(ref _pageFaultsHandled);
    }

    internal void AddInvalidation(long pages)
    {
        Interlocked.Add(ref _pageInvalidations, pages);
        Interlocked.Increment(ref _pageInvalidationsHandled);
    }

    internal void AddPrefetch(long pages) => Interlocked.Add(ref _pagePrefetch, pages);
    internal void AddZap(long entries) { Interlocked.Increment(ref _zapUmrs); Interlocked.Add(ref _zappedEntries, entries); }
    internal void AddDirty(long pages) => Interlocked.Add(ref _dirtied, pages);
    internal void AddRetries(long n) => Interlocked.Add(ref _retries, n);
    internal void AddResumeWithError() => Interlocked.Increment(ref _resumesWithError);
    internal void AddResumeToRetry() => Interlocked.Increment(ref _resumesRetry);
    internal void AddPrefetchWindow(long pages) => Interlocked.Add(ref _prefetchWindowPages, pages);
    internal void AddP2p(long pages) => Interlocked.Add(ref _p2pPages, pages);
    internal void AddFallback(long pages) => Interlocked.Add(ref _fallbackPages, pages);
    internal void AddStale() => Interlocked.Increment(ref _staleTranslations);
    internal void AddChildCreated() => Interlocked.Increment(ref _childrenCreated);
    internal void AddChildReaped() => Interlocked.Increment(ref _childrenReaped);
    internal void AddNullKeyFault() => Interlocked.Increment(ref _nullKeyFaults);

    /// <summary>Every counter by its <c>rdma stat mr</c> name (the five of B.10 first, then the driver's own).</summary>
    public IReadOnlyDictionary<string, long> Snapshot() => new Dictionary<string, long>
    {
        ["page_faults"] = PageFaults,
        ["page_faults_handled"] = PageFaultsHandled,
        ["page_invalidations"] = PageInvalidations,
        ["page_invalidations_handled"] = PageInvalidationsHandled,
        ["page_prefetch"] = PagePrefetch,
        ["zap_umrs"] = ZapUmrs,
        ["zapped_entries"] = ZappedEntries,
        ["dirty_pages"] = DirtyPages,
        ["fault_retries"] = FaultRetries,
        ["resumes_with_error"] = ResumesWithError,
        ["resumes_to_retry"] = ResumesToRetry,
        ["prefetch_window_pages"] = PrefetchWindowPages,
        ["p2p_pages"] = P2pPages,
        ["fallback_pages"] = FallbackPages,
        ["stale_translations"] = StaleTranslations,
        ["implicit_children_created"] = ChildrenCreated,
        ["implicit_children_reaped"] = ChildrenReaped,
        ["null_key_faults"] = NullKeyFaults,
    };
}
