using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;

namespace Hmm.Samples.TestHmm;

using Hmm.Runtime.Mirror;

/// <summary>
/// Simulates <c>struct dmirror</c> of lib/test_hmm.c: one open file of a
/// <see cref="DmirrorDevice"/>, mirroring the opening process's address space. It owns the
/// device page table (<c>pt</c>, indexed by virtual page number), the update lock U
/// (<c>mutex</c>), an interval notifier over the whole address space and the
/// <see cref="DmirrorFlags"/>. Each public operation is the ioctl of the same name
/// (reference/kernel-hmm.md E.4): same checks, same errno, same cpages/faults accounting.
/// </summary>
/// <remarks>
/// Lock order (reference C): mmap_lock → folio locks → U; U is also taken inside the invalidate
/// callback, which can run under the mmap lock and folio locks, so U is never held across
/// hmm_range_fault, migrate_vma_setup/pages or an allocation that could reclaim (HMM-R04,
/// MIG-R03, HMM-R09). Own MIGRATE events are skipped by the callback (HMM-R19): the migration
/// code keeps <c>pt</c> right itself.
/// </remarks>
public sealed partial class Dmirror : IDisposable
{
    /// <summary>The fault path's batch: <c>unsigned long pfns[32]</c>.</summary>
    private const int FaultBatch = 32;

    private readonly KernelMutex _mutex = new("dmirror.mutex");
    [GuardedBy(nameof(_mutex))] private readonly DevicePageTable _pt = new();
    private readonly IntervalNotifier _notifier;
    private readonly AddressSpace _mm;
    private int _flags;
    private int _closed;

    internal Dmirror(DmirrorDevice device, Process process)
    {
        Device = device;
        Process = process;
        _mm = process.Mm;
        _notifier = new IntervalNotifier(new MirrorOps(this));
        // mmu_interval_notifier_insert(&dmirror->notifier, current->mm, 0, ULONG_MAX & PAGE_MASK).
        var e = _notifier.Insert(_mm, 0, ulong.MaxValue & ~Page.OffsetMask);
        if (e != Errno.Ok) throw new ErrnoException(e, "mmu_interval_notifier_insert");
    }

    /// <summary>dmirror->mdevice.</summary>
    public DmirrorDevice Device { get; }

    /// <summary>The mirrored process (the one that opened the file).</summary>
    public Process Process { get; }

    /// <summary>dmirror->flags.</summary>
    public DmirrorFlags Flags => (DmirrorFlags)Volatile.Read(ref _flags);

    /// <summary>Entries in the device page table (for tests and tools).</summary>
    public long MappedPages
    {
        get
        {
            _mutex.Lock();
            try { return _pt.Count; }
            finally { _mutex.Unlock(); }
        }
    }

    /// <summary>
    /// HMM_DMIRROR_READ: the device reads <paramref name="npages"/> pages at
    /// <paramref name="addr"/> into <paramref name="mirror"/> (npages × 4096 bytes). Pages the
    /// device page table lacks are faulted in (read) from the first missing page to the end,
    /// counting a fault each time, and the copy resumes. cpages = pages copied.
    /// </summary>
    public Errno Read(ulong addr, int npages, Span<byte> mirror, out DmirrorCounters counters)
        => Transfer(addr, npages, mirror, default, write: false, out counters);

    /// <summary>
    /// HMM_DMIRROR_WRITE: the device writes <paramref name="mirror"/> to
    /// <paramref name="npages"/> pages at <paramref name="addr"/>. Needs WRITE-tagged entries;
    /// a missing or read-only one causes a write fault from that page to the end (faults++).
    /// cpages = pages written.
    /// </summary>
    public Errno Write(ulong addr, int npages, ReadOnlySpan<byte> mirror, out DmirrorCounters counters)
        => Transfer(addr, npages, default, mirror, write: true, out counters);

    /// <summary>
    /// The loop READ and WRITE share (dmirror_read / dmirror_write): copy page by page under the
    /// mirror lock; at the first page the device page table cannot serve (-ENOENT), fault from
    /// there to the end (read or write), count the fault and resume. The counters are reported
    /// only on success, as the ioctl copies its struct back only then.
    /// </summary>
    private Errno Transfer(ulong addr, int npages, Span<byte> into, ReadOnlySpan<byte> from, bool write, out DmirrorCounters counters)
    {
        counters = default;
        var e = CheckCommand(addr, npages, out ulong end);
        if (e != Errno.Ok) return e;
        if ((ulong)(write ? from.Length : into.Length) < end - addr) return Errno.EFAULT;   // copy_{from,to}_user would fault
        // The ioctl runs in the mirrored process; called after it exited there is nothing to fault.
        if (!_mm.TryGet()) return Errno.EINVAL;
        int cpages = 0, faults = 0;
        try
        {
            while (true)
            {
                ulong start = addr + ((ulong)cpages << Page.Shift);
                _mutex.Lock();
                try { e = write ? DoWrite(addr, start, end, from, ref cpages) : DoRead(addr, start, end, into, ref cpages); }
                finally { _mutex.Unlock(); }
                if (e != Errno.ENOENT) break;
                e = Fault(addr + ((ulong)cpages << Page.Shift), end, write);
                if (e != Errno.Ok) break;
                faults++;
            }
        }
        finally { _mm.Put(); }
        if (e == Errno.Ok) counters = new DmirrorCounters(cpages, faults);
        return e;
    }

    /// <summary>
    /// HMM_DMIRROR_SNAPSHOT: one <see cref="DmirrorProt"/> byte per page in
    /// <paramref name="prot"/>, from hmm_range_fault without faulting (default_flags 0,
    /// dev_private_owner = this device), 32 pages at a time, each batch watched by a temporary
    /// interval notifier and retried on collision for at most 1000 ms (then EBUSY). cpages = pages
    /// reported.
    /// </summary>
    public Errno Snapshot(ulong addr, int npages, Span<byte> prot, out DmirrorCounters counters)
    {
        counters = default;
        var e = CheckCommand(addr, npages, out ulong end);
        if (e != Errno.Ok) return e;
        if (!_mm.TryGet()) return Errno.EINVAL;
        int cpages = 0;
        try
        {
            var range = new HmmRange { DevPrivateOwner = Device };
            Span<byte> perm = stackalloc byte[FaultBatch];
            for (ulong start = addr, next; start < end; start = next)
            {
                next = Math.Min(start + ((ulong)FaultBatch << Page.Shift), end);
                int n = (int)((next - start) >> Page.Shift);
                range.Start = start;
                range.End = next;
                if (range.HmmPfns.Length != n) range.HmmPfns = new ulong[n];
                e = RangeSnapshot(range, perm[..n]);
                if (e != Errno.Ok) break;
                if (prot.Length < cpages + n) { e = Errno.EFAULT; break; }   // copy_to_user
                perm[..n].CopyTo(prot[cpages..]);
                cpages += n;
            }
        }
        finally { _mm.Put(); }
        if (e == Errno.Ok) counters = new DmirrorCounters(cpages, 0);
        return e;
    }

    /// <summary>
    /// HMM_DMIRROR_EXCLUSIVE: under the mmap read lock, make_device_exclusive each page (owner
    /// NULL, as test_hmm passes; the first error aborts with it) and map it ATOMIC-tagged under U
    /// while the returned folio is still locked (EXC-R01: a CPU access that would revoke it needs
    /// that lock), then unlock and put it. Then reads the range back into
    /// <paramref name="mirror"/> like READ without faulting (a missing page → ENOENT).
    /// </summary>
    public Errno Exclusive(ulong addr, int npages, Span<byte> mirror, out DmirrorCounters counters)
    {
        counters = default;
        var e = CheckCommand(addr, npages, out ulong end);
        if (e != Errno.Ok) return e;
        if (!_mm.TryGet()) return Errno.EINVAL;
        _mm.MmapLock.ReadLock();
        try
        {
            for (ulong a = addr; a < end; a += Page.Size)
            {
                e = DeviceExclusive.Make(_mm, a, owner: null, out var page);
                if (e != Errno.Ok) break;
                using (page) e = AtomicMap(a, page.Pfn);
            }
        }
        finally
        {
            _mm.MmapLock.ReadUnlock();
            _mm.Put();
        }
        if (e != Errno.Ok) return e;
        if ((ulong)mirror.Length < end - addr) return Errno.EFAULT;
        int cpages = 0;
        _mutex.Lock();
        try { e = DoRead(addr, addr, end, mirror, ref cpages); }
        finally { _mutex.Unlock(); }
        if (e == Errno.Ok) counters = new DmirrorCounters(cpages, 0);
        return e;
    }

    /// <summary>HMM_DMIRROR_CHECK_EXCLUSIVE: EPERM while any page of the range is still mapped ATOMIC.</summary>
    public Errno CheckExclusive(ulong addr, int npages)
    {
        var e = CheckCommand(addr, npages, out ulong end);
        if (e != Errno.Ok) return e;
        _mutex.Lock();
        try { return _pt.Any(addr >> Page.Shift, end >> Page.Shift, DevicePageTable.TagAtomic) ? Errno.EPERM : Errno.Ok; }
        finally { _mutex.Unlock(); }
    }

    /// <summary>
    /// HMM_DMIRROR_RELEASE: evicts all of the device's memory (every chunk, whichever mirror
    /// uses it) back to system memory with its data, and unplugs it.
    /// </summary>
    public Errno Release()
    {
        ThrowIfClosed();
        Device.RemoveChunks();
        return Errno.Ok;
    }

    /// <summary>HMM_DMIRROR_FLAGS: dmirror->flags = <paramref name="flags"/>.</summary>
    public Errno SetFlags(DmirrorFlags flags)
    {
        ThrowIfClosed();
        Volatile.Write(ref _flags, (int)flags);
        return Errno.Ok;
    }

    /// <summary>
    /// dmirror_fops_release: removes the interval notifier, drops the device page table and
    /// evicts the whole device's memory (other open files of the device included). Idempotent.
    /// </summary>
    public void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        _notifier.Remove();
        _mutex.Lock();
        try { _pt.Clear(); }
        finally { _mutex.Unlock(); }
        Device.RemoveChunks();
    }

    /// <summary>Same as <see cref="Close"/>.</summary>
    public void Dispose() => Close();

    /// <summary>Consumes HMM_DMIRROR_FLAG_FAIL_ALLOC: true once after it was set.</summary>
    internal bool TakeFailAlloc()
        => (Interlocked.And(ref _flags, ~(int)DmirrorFlags.FailAlloc) & (int)DmirrorFlags.FailAlloc) != 0;

    /// <summary>
    /// The ioctl's common checks: a page-aligned addr, and addr &lt; addr + npages × 4096 (no
    /// empty range, no wrap). An ioctl needs an open file.
    /// </summary>
    private Errno CheckCommand(ulong addr, int npages, out ulong end)
    {
        ThrowIfClosed();
        ulong size = unchecked((ulong)(long)npages << Page.Shift);
        end = unchecked(addr + size);
        if (!Page.IsAligned(addr)) return Errno.EINVAL;
        if (npages <= 0 || end <= addr) return Errno.EINVAL;
        return Errno.Ok;
    }

    private void ThrowIfClosed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _closed) != 0, this);

    /// <summary>
    /// dmirror_do_read: copies [start, end) from the pages the device page table maps into
    /// <paramref name="bounce"/> (indexed from <paramref name="origin"/>); ENOENT at the first
    /// missing entry. Under U.
    /// </summary>
    [Requires(nameof(_mutex))]
    private Errno DoRead(ulong origin, ulong start, ulong end, Span<byte> bounce, ref int cpages)
    {
        for (ulong a = start; a < end; a += Page.Size)
        {
            ulong entry = _pt.Load(a >> Page.Shift);
            if (entry == 0) return Errno.ENOENT;
            ulong pfn = Device.DeviceView(DevicePageTable.PfnOf(entry));
            Device.Copy.Read(pfn, 0, bounce.Slice(checked((int)(a - origin)), Page.Size));
            cpages++;
        }
        return Errno.Ok;
    }

    /// <summary>dmirror_do_write: like <see cref="DoRead"/> into the pages; only WRITE-tagged entries count. Under U.</summary>
    [Requires(nameof(_mutex))]
    private Errno DoWrite(ulong origin, ulong start, ulong end, ReadOnlySpan<byte> bounce, ref int cpages)
    {
        for (ulong a = start; a < end; a += Page.Size)
        {
            ulong entry = _pt.Load(a >> Page.Shift);
            if (entry == 0 || DevicePageTable.TagOf(entry) != DevicePageTable.TagWrite) return Errno.ENOENT;
            ulong pfn = Device.DeviceView(DevicePageTable.PfnOf(entry));
            Device.Copy.Write(pfn, 0, bounce.Slice(checked((int)(a - origin)), Page.Size));
            cpages++;
        }
        return Errno.Ok;
    }

    /// <summary>
    /// dmirror_fault: mmget (a dead mm → 0), then for each ≤ 32-page batch of [start, end) the
    /// canonical mirror loop (<see cref="RangeFault"/>) with REQ_FAULT [| REQ_WRITE], mask 0 and
    /// this device as dev_private_owner (HMM-R17). The first error stops it.
    /// </summary>
    [Excludes(nameof(_mutex))]
    private Errno Fault(ulong start, ulong end, bool write)
    {
        if (!_mm.TryGet()) return Errno.Ok;
        try
        {
            var range = new HmmRange
            {
                Notifier = _notifier,
                PfnFlagsMask = 0,
                DefaultFlags = HmmPfn.ReqFault | (write ? HmmPfn.ReqWrite : 0),
                DevPrivateOwner = Device,
            };
            for (ulong a = start; a < end; a = range.End)
            {
                range.Start = a;
                range.End = Math.Min(a + ((ulong)FaultBatch << Page.Shift), end);
                int n = range.PageCount;
                if (range.HmmPfns.Length != n) range.HmmPfns = new ulong[n];
                var e = RangeFault(range);
                if (e != Errno.Ok) return e;
            }
            return Errno.Ok;
        }
        finally { _mm.Put(); }
    }

    /// <summary>
    /// dmirror_range_fault: read_begin → mmap read lock → hmm_range_fault → unlock; EBUSY
    /// restarts (bounded by HMM_RANGE_DEFAULT_TIMEOUT, 1000 ms, then EBUSY), other errors
    /// return; then U, read_retry (collision → unlock and restart), program the device page
    /// table (<see cref="DoFault"/>), unlock (HMM-R01..R06).
    /// </summary>
    [Excludes(nameof(_mutex))]
    private Errno RangeFault(HmmRange range)
    {
        long deadline = Environment.TickCount64 + HmmPfn.DefaultTimeoutMs;
        while (true)
        {
            if (Environment.TickCount64 > deadline) return Errno.EBUSY;
            range.NotifierSeq = _notifier.ReadBegin();
            Errno e;
            _mm.MmapLock.ReadLock();
            try { e = range.Fault(); }
            finally { _mm.MmapLock.ReadUnlock(); }
            if (e == Errno.EBUSY) continue;
            if (e != Errno.Ok) return e;
            _mutex.Lock();
            if (_notifier.ReadRetry(range.NotifierSeq))
            {
                _mutex.Unlock();
                continue;
            }
            try { return DoFault(range); }
            finally { _mutex.Unlock(); }
        }
    }

    /// <summary>
    /// dmirror_do_fault: stores every pfn of the range in the device page table, WRITE-tagged
    /// when hmm_range_fault reported WRITE; a write request answered without WRITE (the device's
    /// own read-only private page, H.2) is EFAULT. An own private page is stored as the device
    /// page, as test_hmm does. Under U, after a successful read_retry (HMM-R06, HMM-R14).
    /// </summary>
    [Requires(nameof(_mutex))]
    private Errno DoFault(HmmRange range)
    {
        var pfns = range.HmmPfns;
        ulong vpn = range.Start >> Page.Shift;
        for (int i = 0; i < pfns.Length; i++)
        {
            ulong word = pfns[i];
            // Asked to populate: success never leaves ERROR or invalid words (WARN_ON in test_hmm).
            if (!HmmPfn.IsValid(word) || (word & HmmPfn.Error) != 0) return Errno.EFAULT;
            ulong pfn = HmmPfn.ToPfn(word);
            int tag = DevicePageTable.TagRead;
            if ((word & HmmPfn.Write) != 0) tag = DevicePageTable.TagWrite;
            else if ((range.DefaultFlags & HmmPfn.ReqWrite) != 0) return Errno.EFAULT;
            _pt.Store(vpn + (ulong)i, DevicePageTable.Make(pfn, tag));
        }
        return Errno.Ok;
    }

    /// <summary>
    /// dmirror_range_snapshot: inserts a temporary interval notifier for the batch (its callback
    /// only sets the seq under U), then the retry loop without faulting, then under U translates
    /// each word (<see cref="MkEntry"/>); removes the notifier on every path.
    /// </summary>
    [Excludes(nameof(_mutex))]
    private Errno RangeSnapshot(HmmRange range, Span<byte> perm)
    {
        var notifier = new IntervalNotifier(new SnapshotOps(this));
        range.Notifier = notifier;
        var e = notifier.Insert(_mm, range.Start, range.End - range.Start);
        if (e != Errno.Ok) return e;
        try
        {
            long deadline = Environment.TickCount64 + HmmPfn.DefaultTimeoutMs;
            while (true)
            {
                if (Environment.TickCount64 > deadline) return Errno.EBUSY;
                range.NotifierSeq = notifier.ReadBegin();
                Array.Clear(range.HmmPfns);
                _mm.MmapLock.ReadLock();
                try { e = range.Fault(); }
                finally { _mm.MmapLock.ReadUnlock(); }
                if (e == Errno.EBUSY) continue;
                if (e != Errno.Ok) return e;
                _mutex.Lock();
                if (notifier.ReadRetry(range.NotifierSeq))
                {
                    _mutex.Unlock();
                    continue;
                }
                try
                {
                    for (int i = 0; i < perm.Length; i++) perm[i] = MkEntry(range.HmmPfns[i]);
                }
                finally { _mutex.Unlock(); }
                return Errno.Ok;
            }
        }
        finally { notifier.Remove(); }
    }

    /// <summary>dmirror_mkentry: the E.5 byte for one hmm_pfns word.</summary>
    private byte MkEntry(ulong word)
    {
        if ((word & HmmPfn.Error) != 0) return DmirrorProt.Error;
        if (!HmmPfn.IsValid(word)) return DmirrorProt.None;
        ulong pfn = HmmPfn.ToPfn(word);
        byte perm;
        var pgmap = DevPagemap.Of(Device.Machine, pfn);
        if (pgmap?.Kind == DevicePageKind.Private)
            perm = pgmap.Owner == Device ? DmirrorProt.DevPrivateLocal : DmirrorProt.DevPrivateRemote;
        else if (pgmap?.Kind == DevicePageKind.Coherent)
            perm = pgmap.Owner == Device ? DmirrorProt.DevCoherentLocal : DmirrorProt.DevCoherentRemote;
        else if (Machine.IsZeroPfn(pfn))
            perm = DmirrorProt.Zero;
        else
            perm = DmirrorProt.None;
        perm |= (word & HmmPfn.Write) != 0 ? DmirrorProt.Write : DmirrorProt.Read;
        int order = HmmPfn.ToMapOrder(word);
        if (order == Page.PmdOrder) perm |= DmirrorProt.Pmd;
        else if (order == Page.PudOrder) perm |= DmirrorProt.Pud;
        return perm;
    }

    /// <summary>dmirror_atomic_map: an ATOMIC-tagged entry for the exclusive page, under U.</summary>
    [Excludes(nameof(_mutex))]
    private Errno AtomicMap(ulong addr, ulong pfn)
    {
        _mutex.Lock();
        try { _pt.Store(addr >> Page.Shift, DevicePageTable.Make(pfn, DevicePageTable.TagAtomic)); }
        finally { _mutex.Unlock(); }
        return Errno.Ok;
    }

    /// <summary>
    /// dmirror_interval_invalidate: own MIGRATE events (owner == this device) return at once —
    /// the migration code maintains <c>pt</c> (HMM-R19); EXCLUSIVE events are not filtered. Else
    /// lock U (try-lock and refuse when the range is not blockable, HMM-R07/R08), set the seq,
    /// erase vpn start&gt;&gt;12 .. end&gt;&gt;12 <b>inclusive</b> (test_hmm's quirk: one page past
    /// the range goes too), unlock.
    /// </summary>
    private bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (range.Event == NotifyEvent.Migrate && range.Owner == Device) return true;
        if (range.Blockable) _mutex.Lock();
        else if (!_mutex.TryLock()) return false;
        try
        {
            notifier.SetSeq(curSeq);
            _pt.EraseRange(range.Start >> Page.Shift, range.End >> Page.Shift);
        }
        finally { _mutex.Unlock(); }
        return true;
    }

    /// <summary>dmirror_snapshot_invalidate: the temporary snapshot notifier only sets its seq, under U.</summary>
    private bool SnapshotInvalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (range.Blockable) _mutex.Lock();
        else if (!_mutex.TryLock()) return false;
        try { notifier.SetSeq(curSeq); }
        finally { _mutex.Unlock(); }
        return true;
    }

    /// <summary>dmirror_min_ops.</summary>
    private sealed class MirrorOps(Dmirror mirror) : IIntervalNotifierOps
    {
        public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq) => mirror.Invalidate(notifier, range, curSeq);
    }

    /// <summary>dmirror_mrn_ops (the snapshot's temporary notifier).</summary>
    private sealed class SnapshotOps(Dmirror mirror) : IIntervalNotifierOps
    {
        public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq) => mirror.SnapshotInvalidate(notifier, range, curSeq);
    }

    /// <inheritdoc/>
    public override string ToString() => $"dmirror of {Process} on {Device}";
}
