using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Pci;

namespace Hmm.Samples.Mlx5;

/// <summary>How a fault or an advice maps pages (the flags of <c>ib_umem_odp_map_dma_and_lock</c> / <c>pagefault_real_mr</c>).</summary>
public enum OdpMapMode
{
    /// <summary>Fault in, readable.</summary>
    Read,

    /// <summary>Fault in, writable (the umem is writable and the operation writes).</summary>
    Write,

    /// <summary>PREFETCH advice: fault in but map read-only (MLX5_IB_UPD_XLT_DOWNGRADE), so a later write faults again.</summary>
    Downgrade,

    /// <summary>PREFETCH_NO_FAULT advice / the registration snapshot: map only what the CPU page table already holds.</summary>
    Snapshot,
}

/// <summary>
/// An ODP umem (<c>struct ib_umem_odp</c>, drivers.md B.1) and its MTT translation table: one
/// interval notifier over the region's VA range (an explicit MR, or one 1 GiB child of an implicit
/// MR), nothing pinned. Declared in the DSL: the generator writes the notifier trampoline and the
/// read_begin / hmm_range_fault / <c>umem_mutex</c> / read_retry fault loop; this class only says
/// what an invalidation zaps (<see cref="Zap"/>: runs flushed at 8-entry boundaries, written pages
/// marked dirty, B.6) and how a good snapshot becomes MTT entries (<see cref="PopulateMtt"/>,
/// <c>populate_mtt</c>, B.5 step 4) — including the p2p proposal of B.13: a peer GPU's private page
/// reported by the fault is mapped at the BAR address the GPU exports, or retried without p2p
/// (migrate-to-RAM) when it cannot be.
/// </summary>
/// <remarks>
/// The owner passed to hmm_range_fault is the NIC itself (mainline: peer private pages migrate back)
/// unless the device enabled p2p, in which case it is the peer GPU's pgmap owner (the RFC's
/// HMM_PFN_ALLOW_P2P, expressed as the shared <c>dev_private_owner</c> of G.1). The NIC never migrates
/// anything itself, so no MIGRATE event is its own: <c>FilterOwnMigrations = false</c> lets the GPU's
/// migrations (eviction, a CPU touch) revoke the NIC's p2p entries.
/// </remarks>
[HmmDriver("mlx5_ib_odp", UpdateLock = nameof(_umemMutex), Owner = nameof(FaultOwner), FilterOwnMigrations = false, RangedNotifier = true)]
public sealed partial class OdpUmem
{
    /// <summary>MTT entry bit: the NIC may read the page.</summary>
    internal const ulong MttRead = 1;

    /// <summary>MTT entry bit: the NIC may write the page.</summary>
    internal const ulong MttWrite = 2;

    /// <summary>MTT entry bit: the address is a peer's BAR address (p2p), not a host DMA address.</summary>
    internal const ulong MttP2p = 4;

    private const ulong MttFlags = MttRead | MttWrite | MttP2p;

    // Set on the faulting thread while it retries pages a peer could not export: hmm_range_fault then
    // runs with the NIC as owner, so the peer's private pages migrate to RAM (the RFC's fallback).
    [ThreadStatic] private static OdpUmem? t_withoutP2p;
    [ThreadStatic] private static bool t_downgrade;
    [ThreadStatic] private static long t_mapped, t_p2p;
    [ThreadStatic] private static List<ulong>? t_fallback;

    private readonly KernelMutex _umemMutex = new("mlx5_ib.umem_mutex");
    private readonly Mlx5IbDevice _nic;
    private readonly Process _process;
    private readonly OdpCounters _counters;
    private readonly object? _peerOwner;
    [GuardedBy(nameof(_umemMutex))] private readonly ulong[] _mtt;
    [GuardedBy(nameof(_umemMutex))] private readonly ulong[] _pfn;
    private IDevicePrivateP2pPages? _peer;
    private long _npages;

    private static long s_nextId;

    /// <summary>A creation-order number: nested umem locks are taken lower id first.</summary>
    internal readonly long Id = Interlocked.Increment(ref s_nextId);

    /// <summary>Users of an implicit child (faults and DMA bursts in progress); the reaper only destroys a child nobody uses. Changed under the parent's lock.</summary>
    internal int ChildUsers;

    internal OdpUmem(Mlx5IbDevice nic, Process process, OdpCounters counters, ulong start, ulong end, bool writable, ImplicitOdp? parent)
    {
        _nic = nic;
        _process = process;
        _counters = counters;
        _peerOwner = nic.PeerOwner;
        Start = start;
        End = end;
        Writable = writable;
        Parent = parent;
        _mtt = new ulong[(end - start) >> Page.Shift];
        _pfn = new ulong[_mtt.Length];
    }

    /// <summary>First byte covered (page aligned).</summary>
    public ulong Start { get; }

    /// <summary>End of the range (exclusive, page aligned).</summary>
    public ulong End { get; }

    /// <summary>Whether the region was registered with a write access flag.</summary>
    public bool Writable { get; }

    /// <summary>The implicit MR this umem is a 1 GiB child of, or null for an explicit MR.</summary>
    public ImplicitOdp? Parent { get; }

    /// <summary><c>umem_odp->npages</c>: MTT entries currently valid.</summary>
    public long MappedPages => Interlocked.Read(ref _npages);

    /// <summary>The dev_private_owner of this umem's faults (see the class remarks).</summary>
    private object FaultOwner => _peerOwner == null || ReferenceEquals(t_withoutP2p, this) ? this : _peerOwner;

    /// <summary>Registers the umem: the generated attach inserts the interval notifier over [Start, End) (ib_umem_odp_get: nothing pinned).</summary>
    internal Errno Register() => Attach(_nic.Device, _process, Start, End);

    /// <summary>
    /// <c>pagefault_real_mr</c> over [<paramref name="start"/>, <paramref name="end"/>) (clipped by the
    /// caller to the umem): the generated fault loop, then the pages a peer could not export retried
    /// one by one without p2p. Returns the fault's errno; <paramref name="mapped"/> the pages mapped.
    /// </summary>
    [MayBlock]
    internal Errno MapRange(ulong start, ulong end, OdpMapMode mode, out long mapped)
    {
        t_downgrade = mode == OdpMapMode.Downgrade;
        t_mapped = 0;
        t_p2p = 0;
        (t_fallback ??= []).Clear();
        bool write = mode == OdpMapMode.Write;
        var e = mode == OdpMapMode.Snapshot
            ? Fault(new FaultRange(Instance, start, end, Write: false, Atomic: false, PrefetchOnly: true))
            : Fault(start, end, write);
        if (mode == OdpMapMode.Snapshot) t_fallback.Clear(); // a snapshot never faults: unexportable peer pages stay unmapped
        if (t_fallback.Count > 0 && e == Errno.Ok)
        {
            // B.13: DMA-mapping a p2p page failed → retry only the failing pfns without the flag.
            var retry = t_fallback.ToArray();
            t_fallback.Clear();
            t_withoutP2p = this;
            try
            {
                foreach (ulong va in retry)
                {
                    e = Fault(va, va + Page.Size, write);
                    if (e != Errno.Ok) break;
                }
            }
            finally { t_withoutP2p = null; }
            _counters.AddFallback(retry.Length);
        }
        t_downgrade = false;
        _counters.AddP2p(t_p2p);
        mapped = t_mapped;
        return e;
    }

    // ------------------------------------------------------------------ [OnMirrorFault]

    /// <summary>
    /// [OnMirrorFault] — <c>populate_mtt</c> under <c>umem_mutex</c>, after the generated read_retry
    /// said the snapshot is good: each valid pfn is DMA-mapped once (already-mapped entries only get
    /// their permission refreshed), readable, and writable only if the CPU PTE was writable, the umem
    /// is writable and no downgrade was asked. A peer GPU's private page (reported because the fault
    /// ran with its owner) is mapped at the BAR address the GPU exports, or queued for the fallback.
    /// </summary>
    [OnMirrorFault]
    private void PopulateMtt(HmmRange range, ReadOnlySpan<ulong> hmmPfns)
    {
        var machine = _nic.Machine;
        var iommu = _nic.Device.Iommu;
        long mapped = 0, p2p = 0, added = 0;
        for (int i = 0; i < hmmPfns.Length; i++)
        {
            ulong word = hmmPfns[i];
            if (!HmmPfn.IsValid(word) || (word & HmmPfn.Error) != 0) continue;
            ulong va = range.Start + ((ulong)i << Page.Shift);
            if (va < Start || va >= End) continue;
            int idx = (int)((va - Start) >> Page.Shift);
            ulong pfn = HmmPfn.ToPfn(word);
            ulong perm = MttRead | ((word & HmmPfn.Write) != 0 && Writable && !t_downgrade ? MttWrite : 0);
            ulong old = _mtt[idx];
            if (old != 0 && _pfn[idx] == pfn)
            {
                _mtt[idx] = (old & ~(MttRead | MttWrite)) | perm;
                mapped++;
                continue;
            }
            if (old != 0) UnmapEntry(idx, old);
            ulong address;
            if (DevPagemap.Of(machine, pfn) is { Kind: DevicePageKind.Private } peerMemory)
            {
                // Reported in place only because the fault ran with the peer's owner (p2p enabled).
                if (_nic.Device.Pci is not { } nicPci || DevicePrivateP2pDma.Map(peerMemory, pfn, nicPci, out ulong bus) != Errno.Ok)
                {
                    t_fallback!.Add(va);
                    continue;
                }
                _peer ??= (IDevicePrivateP2pPages)peerMemory.Ops!;
                address = bus | MttP2p;
                p2p++;
            }
            else
            {
                ulong dma = iommu.DmaMap(pfn, 1, write: true);
                if (dma == Iommu.MappingError) continue;
                address = dma;
            }
            _pfn[idx] = pfn;
            Volatile.Write(ref _mtt[idx], address | perm);
            added++;
            mapped++;
        }
        Interlocked.Add(ref _npages, added);
        t_mapped += mapped;
        t_p2p += p2p;
    }

    // ------------------------------------------------------------------ [OnInvalidate]

    /// <summary>
    /// [OnInvalidate] — <c>mlx5_ib_invalidate_range</c> with <c>umem_mutex</c> held and the sequence
    /// already set by the generated trampoline: clip to the umem; walk the entries grouping runs of
    /// valid ones, each run zapped by one UMR (ZAP|ATOMIC) flushed only at an 8-entry boundary (so a
    /// zap may cover entries already empty); then unmap the pages, dirtying those the NIC could write.
    /// An implicit child left empty is handed to the reaper. Never sleeps (non-blockable ranges allowed).
    /// </summary>
    [OnInvalidate]
    private void Zap(in NotifierRange range)
    {
        if (Interlocked.Read(ref _npages) == 0) return;
        ulong start = Math.Max(range.Start, Start), end = Math.Min(range.End, End);
        if (start >= end) return;
        int first = (int)((start - Start) >> Page.Shift), last = (int)((end - Start + Page.Size - 1) >> Page.Shift);
        const int Alignment = 8; // MLX5_UMR_MTT_NUM_ENTRIES_ALIGNMENT: 64-byte UMR / 8-byte MTT
        if (_nic.Options.PlantedZapSkipsPartialTail) last = first + ((last - first) & ~(Alignment - 1));
        bool inBlock = false;
        int blockStart = 0;
        long unmapped = 0, dirty = 0;
        int idx;
        for (idx = first; idx < last; idx++)
        {
            ulong entry = _mtt[idx];
            if (entry != 0)
            {
                if (!inBlock) { blockStart = idx; inBlock = true; }
                if ((entry & MttWrite) != 0 && (entry & MttP2p) == 0) dirty++;
                Volatile.Write(ref _mtt[idx], 0);
                UnmapEntry(idx, entry);
                unmapped++;
            }
            else if (inBlock && (idx & (Alignment - 1)) == 0)
            {
                PostZapUmr(idx - blockStart);
                inBlock = false;
            }
        }
        if (inBlock) PostZapUmr(idx - blockStart);
        if (unmapped == 0) return;
        long left = Interlocked.Add(ref _npages, -unmapped);
        _counters.AddInvalidation(unmapped);
        _counters.AddDirty(dirty);
        if (left == 0 && Parent != null) _nic.ScheduleReap(Parent, this);
    }

    /// <summary>A UMR ZAP|ATOMIC of <paramref name="entries"/> MTT entries, posted and waited for before the callback returns.</summary>
    private void PostZapUmr(int entries)
    {
        _counters.AddZap(entries);
        _nic.Device.Clock.Advance(_nic.Device.Options.Costs.TlbInvalidateNs);
    }

    /// <summary>ib_umem_odp_unmap_dma_pages for one entry: dirty the page if the NIC could write it, drop the DMA mapping. U held.</summary>
    [Requires(nameof(_umemMutex))]
    private void UnmapEntry(int idx, ulong entry)
    {
        if ((entry & MttP2p) != 0) return; // a BAR address: nothing mapped on the host side
        ulong pfn = _pfn[idx];
        if ((entry & MttWrite) != 0) _nic.Machine.SetPageDirty(pfn);
        _nic.Device.Iommu.DmaUnmap(entry & ~MttFlags, 1);
    }

    /// <summary>Deregistration: every page unmapped under <c>umem_mutex</c>, then the generated detach removes the notifier.</summary>
    [MayBlock]
    internal void Release()
    {
        _umemMutex.Lock();
        try
        {
            for (int i = 0; i < _mtt.Length; i++)
            {
                ulong entry = _mtt[i];
                if (entry == 0) continue;
                Volatile.Write(ref _mtt[i], 0);
                UnmapEntry(i, entry);
            }
            Interlocked.Exchange(ref _npages, 0);
        }
        finally { _umemMutex.Unlock(); }
        Detach();
    }

    /// <summary>The MTT entry of <paramref name="va"/> as the hardware sees it: the DMA (or BAR) address, and whether it is p2p / writable. False when empty.</summary>
    public bool TryGetTranslation(ulong va, out ulong address, out bool p2p, out bool writable)
    {
        address = 0;
        p2p = writable = false;
        if (va < Start || va >= End) return false;
        _umemMutex.Lock();
        try
        {
            ulong entry = _mtt[(va - Start) >> Page.Shift];
            if (entry == 0) return false;
            address = entry & ~MttFlags;
            p2p = (entry & MttP2p) != 0;
            writable = (entry & MttWrite) != 0;
            return true;
        }
        finally { _umemMutex.Unlock(); }
    }
}
