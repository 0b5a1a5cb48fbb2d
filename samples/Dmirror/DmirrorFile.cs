using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Scheduling;

namespace Hmm.Samples.TestHmm;

/// <summary>
/// The DSL driver behind <see cref="Dmirror"/>: <c>struct dmirror</c>'s device page table
/// (<c>pt</c>) under the update lock U (<c>mutex</c>). The generated code owns the interval
/// notifier, the 32-page fault loop (dmirror_fault), the snapshot loop, the own-event filter
/// (HMM-R19), migrate_to_ram (dmirror_devmem_fault) and the ioctls' migration walk
/// (<c>MigrationWalk.TestHmmIoctl</c>: dmirror_migrate_to_device / _to_system); what stays is
/// test_hmm's own: tagged entries, the one-past erase quirk, FAIL_ALLOC, finalize_and_map. Device
/// pages hold the data (no BACKING_PAGE). Lock order
/// (reference C): mmap_lock → folio locks → U, so U is never held across hmm_range_fault,
/// migrate_vma_setup/pages or an allocation that could reclaim (HMM-R04, MIG-R03, HMM-R09).
/// </summary>
[HmmDriver("dmirror", UpdateLock = nameof(_mutex), Memory = nameof(Memory), FaultBatchPages = 32, GenerateSnapshot = true, MigrationWalk = MigrationWalk.TestHmmIoctl)]
internal sealed partial class DmirrorFile
{
    private readonly KernelMutex _mutex = new("dmirror.mutex");
    [GuardedBy(nameof(_mutex))] private readonly DevicePageTable _pt = new();
    private int _flags;

    public DmirrorFile(DmirrorMemory memory) => Memory = memory;

    public DmirrorMemory Memory { get; }

    public DmirrorFlags FlagBits
    {
        get => (DmirrorFlags)Volatile.Read(ref _flags);
        set => Volatile.Write(ref _flags, (int)value);
    }

    public long EntryCount
    {
        get
        {
            _mutex.Lock();
            try { return _pt.Count; }
            finally { _mutex.Unlock(); }
        }
    }

    /// <summary>Consumes HMM_DMIRROR_FLAG_FAIL_ALLOC: true once after it was set.</summary>
    private bool TakeFailAlloc()
        => (Interlocked.And(ref _flags, ~(int)DmirrorFlags.FailAlloc) & (int)DmirrorFlags.FailAlloc) != 0;

    /// <summary>
    /// dmirror_do_fault (the generated 32-page loop is dmirror_fault): stores each pfn, WRITE-tagged
    /// when reported WRITE; a write request answered without WRITE (the device's own read-only
    /// private page, H.2) or an invalid word is EFAULT, which ends the fault there.
    /// </summary>
    [OnMirrorFault]
    private Errno StoreFault(HmmRange range, ReadOnlySpan<ulong> hmmPfns)
    {
        ulong vpn = range.Start >> Page.Shift;
        bool wantWrite = (range.DefaultFlags & HmmPfn.ReqWrite) != 0;
        for (int i = 0; i < hmmPfns.Length; i++)
        {
            ulong word = hmmPfns[i];
            bool write = (word & HmmPfn.Write) != 0;
            if (!HmmPfn.IsValid(word) || (word & HmmPfn.Error) != 0 || (wantWrite && !write)) return Errno.EFAULT;
            _pt.Store(vpn + (ulong)i, DevicePageTable.Make(HmmPfn.ToPfn(word), write ? DevicePageTable.TagWrite : DevicePageTable.TagRead));
        }
        return Errno.Ok;
    }

    /// <summary>
    /// dmirror_interval_invalidate: erase vpn start&gt;&gt;12 .. end&gt;&gt;12 <b>inclusive</b> (test_hmm's
    /// quirk). Own MIGRATE events are filtered; the one the generated migrate_to_ram raises for
    /// itself erases exactly the pages it moves, as dmirror_devmem_fault_alloc_and_copy does.
    /// </summary>
    [OnInvalidate]
    private void Erase(in NotifierRange range)
    {
        ulong last = range.End >> Page.Shift;
        if (range.Event == NotifyEvent.Migrate && ReferenceEquals(range.Owner, PgmapOwner)) last--;
        _pt.EraseRange(range.Start >> Page.Shift, last);
    }

    /// <summary>
    /// dmirror_migrate_finalize_and_map, under U between migrate_vma_pages and finalize (MIG-R06):
    /// every entry that moved to the device is mapped to its device page(s), WRITE-tagged when dst
    /// carries MIGRATE_PFN_WRITE; nothing was erased before, so a page that did not move keeps its
    /// entry. Migrations to system memory erased their entries before migrate_vma_pages.
    /// </summary>
    [OnMigrated]
    private void MapMigrated(MigrateVma args)
    {
        if ((args.Flags & MigrateSelect.System) == 0) return;
        ulong[] src = args.Src, dst = args.Dst;
        ulong vpn = args.Start >> Page.Shift;
        for (int i = 0, n = args.EntryCount; i < n; i++)
        {
            if ((src[i] & MigratePfn.Migrate) == 0 || !MigratePfn.IsValid(dst[i])) continue;
            int nr = (dst[i] & MigratePfn.Compound) != 0 ? Math.Min(Page.PmdPages, n - i) : 1;
            int tag = (dst[i] & MigratePfn.Write) != 0 ? DevicePageTable.TagWrite : DevicePageTable.TagRead;
            for (int k = 0; k < nr; k++) _pt.Store(vpn + (ulong)(i + k), DevicePageTable.Make((dst[i] >> MigratePfn.Shift) + (ulong)k, tag));
            i += nr - 1;
        }
    }

    [CopyPages]
    private void CopyPages(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);

    // Every destination of the generated migrations (ioctls and migrate_to_ram): FAIL_ALLOC fails one.
    [AllocatePage]
    private bool AllocatePage(int order, bool toDevice, out ulong pfn)
    {
        pfn = 0;
        return !TakeFailAlloc() && Allocate(order, toDevice, out pfn);
    }

    private bool Allocate(int order, bool toDevice, out ulong pfn)
        => toDevice ? AllocateDevicePage(order, out pfn) : SystemPages.TryAllocateLocked(Device.Machine, order, out pfn);

    /// <summary>dmirror_devmem_alloc_page: a device page or 2 MiB folio, recorded as this file's (migrate_to_ram).</summary>
    private bool AllocateDevicePage(int order, out ulong pfn)
    {
        pfn = 0;
        if (FaultInjection.Fails(order != 0 ? FaultSite.DeviceLargePage : FaultSite.DevicePage)) return false;
        if (!Memory.TryAllocateDevicePage(order, out pfn)) return false;
        Memory.SetDevicePageUser(pfn, order, this);
        return true;
    }

    /// <summary>
    /// dmirror_do_read / dmirror_do_write under U: [start, end) between the mapped pages and the
    /// bounce buffer (from <paramref name="origin"/>); ENOENT at the first missing (or, writing, not WRITE-tagged) entry.
    /// </summary>
    [Excludes(nameof(_mutex))]
    public Errno CopyPagesOf(ulong origin, ulong start, ulong end, Span<byte> into, ReadOnlySpan<byte> from, bool write, ref int cpages)
    {
        _mutex.Lock();
        try
        {
            for (ulong a = start; a < end; a += Page.Size)
            {
                ulong entry = _pt.Load(a >> Page.Shift);
                if (entry == 0 || (write && DevicePageTable.TagOf(entry) != DevicePageTable.TagWrite)) return Errno.ENOENT;
                int at = checked((int)(a - origin));
                if (write) Device.Copy.Write(DevicePageTable.PfnOf(entry), 0, from.Slice(at, Page.Size));
                else Device.Copy.Read(DevicePageTable.PfnOf(entry), 0, into.Slice(at, Page.Size));
                cpages++;
            }
            return Errno.Ok;
        }
        finally { _mutex.Unlock(); }
    }

    // dmirror_atomic_map.
    [Excludes(nameof(_mutex))]
    public void MapAtomic(ulong addr, ulong pfn)
    {
        _mutex.Lock();
        try { _pt.Store(addr >> Page.Shift, DevicePageTable.Make(pfn, DevicePageTable.TagAtomic)); }
        finally { _mutex.Unlock(); }
    }

    [Excludes(nameof(_mutex))]
    public bool AnyAtomic(ulong first, ulong end)
    {
        _mutex.Lock();
        try { return _pt.Any(first, end, DevicePageTable.TagAtomic); }
        finally { _mutex.Unlock(); }
    }

    [Excludes(nameof(_mutex))]
    public void ClearTable()
    {
        _mutex.Lock();
        try { _pt.Clear(); }
        finally { _mutex.Unlock(); }
    }

    /// <summary>dmirror_mkentry: the E.5 byte for one hmm_pfns word.</summary>
    public byte MkEntry(ulong word)
    {
        if ((word & HmmPfn.Error) != 0) return DmirrorProt.Error;
        if (!HmmPfn.IsValid(word)) return DmirrorProt.None;
        ulong pfn = HmmPfn.ToPfn(word);
        byte perm;
        var pgmap = DevPagemap.Of(Device.Machine, pfn);
        bool local = pgmap != null && ReferenceEquals(pgmap.Owner, PgmapOwner);
        if (pgmap?.Kind == DevicePageKind.Private) perm = local ? DmirrorProt.DevPrivateLocal : DmirrorProt.DevPrivateRemote;
        else if (pgmap?.Kind == DevicePageKind.Coherent) perm = local ? DmirrorProt.DevCoherentLocal : DmirrorProt.DevCoherentRemote;
        else perm = Machine.IsZeroPfn(pfn) ? DmirrorProt.Zero : DmirrorProt.None;
        perm |= (word & HmmPfn.Write) != 0 ? DmirrorProt.Write : DmirrorProt.Read;
        int order = HmmPfn.ToMapOrder(word);
        if (order == Page.PmdOrder) perm |= DmirrorProt.Pmd;
        else if (order == Page.PudOrder) perm |= DmirrorProt.Pud;
        return perm;
    }
}
