using Hmm.Dsl;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

/// <summary>
/// Simulates <c>struct mm_struct</c>: one process's address space — its VMAs, CPU page tables,
/// the mmap lock and the MMU-notifier subscriptions hanging off it.
/// </summary>
/// <remarks>
/// Locking, as in the kernel: operations that change VMAs (mmap, munmap, mprotect, mremap,
/// madvise, fork, exit) hold <see cref="MmapLock"/> for write; CPU faults and drivers
/// (hmm_range_fault, migrate_vma) hold it for read; PTE updates under the read lock also take
/// the page-table lock; lockless walkers read entries under the read lock only.
/// </remarks>
public sealed partial class AddressSpace
{
    /// <summary>TASK_SIZE of x86-64 with 4-level paging: user addresses lie below it.</summary>
    public const ulong TaskSize = 0x0000_7FFF_FFFF_F000;

    /// <summary>vm.mmap_min_addr default: MAP_FIXED below it fails with EPERM.</summary>
    public const ulong MmapMinAddr = 0x10000;

    /// <summary>mmap_base: top-down allocation starts below it.</summary>
    public const ulong MmapBase = 0x0000_7F00_0000_0000;

    private IMmuNotifierHook? _notifierHook;
    private int _users = 1;

    internal readonly VmaList VmaTree = new();
    internal readonly PageTables Tables = new();

    /// <summary>mm->page_table_lock: serialises PTE updates made under the mmap read lock.</summary>
    internal readonly SpinLock PageTableLock = new("mm.page_table_lock");

    /// <summary>The CPUs' TLBs for this mm: accesses in flight and their shootdown (flush_tlb_range).</summary>
    internal readonly TlbShootdown Tlb = new();

    internal AddressSpace(Machine machine, int id)
    {
        Machine = machine;
        Frames = machine.Frames;
        Id = id;
        MmapLock = new RwSemaphore("mm.MmapLock");
    }

    /// <summary>The machine this address space lives on.</summary>
    public Machine Machine { get; }

    internal PageFrames Frames { get; }

    /// <summary>A small integer naming this mm in messages (the owner's pid).</summary>
    public int Id { get; }

    /// <summary>Simulates <c>mm->mmap_lock</c>: held for write by mmap/munmap/mprotect/…, for read by faults and by drivers around hmm_range_fault and migrate_vma.</summary>
    public RwSemaphore MmapLock { get; }

    /// <summary><c>mm_users</c>: 0 once the owning process has exited (mmget_not_zero fails).</summary>
    public int Users => Volatile.Read(ref _users);

    /// <summary>Whether exit_mmap ran: the address space is empty for good.</summary>
    public bool IsTornDown { get; private set; }

    /// <summary>Resident anonymous pages (MM_ANONPAGES), counting a THP as 512.</summary>
    public long RssAnon => Volatile.Read(ref _rssAnon);

    /// <summary>Resident file and shmem pages (MM_FILEPAGES + MM_SHMEMPAGES).</summary>
    public long RssFile => Volatile.Read(ref _rssFile);

    internal long _rssAnon, _rssFile;

    /// <summary>Page-table pages in use (the PGD included).</summary>
    public int PageTablePages => Tables.TablesInUse;

    /// <summary>A snapshot of the VMAs, in address order.</summary>
    public IReadOnlyList<Vma> Vmas
    {
        get
        {
            bool locked = !MmapLock.IsHeldByCurrentThread;
            if (locked) MmapLock.ReadLock();
            try { return VmaTree.ToList(); }
            finally { if (locked) MmapLock.ReadUnlock(); }
        }
    }

    /// <summary>vma_lookup under the caller's mmap lock: the VMA containing <paramref name="address"/>, or null.</summary>
    [RequiresShared("this.MmapLock")]
    public Vma? FindVma(ulong address)
    {
        AssertLocked("FindVma");
        return VmaTree.Lookup(address);
    }

    /// <summary>mmget_not_zero: pins the mm's users so it cannot be torn down (HMM-R13).</summary>
    [AcquiresReference("mm", "this", When = AcquiredWhen.ReturnsTrue)]
    public bool TryGet()
    {
        int users = Volatile.Read(ref _users);
        while (users > 0)
        {
            int seen = Interlocked.CompareExchange(ref _users, users + 1, users);
            if (seen == users) return true;
            users = seen;
        }
        return false;
    }

    /// <summary>mmput: drops a reference taken by <see cref="TryGet"/>; the last one tears the address space down.</summary>
    [MayBlock]
    [MayDropMmReference]
    [ReleasesReference("mm", "this")]
    public void Put()
    {
        int left = Interlocked.Decrement(ref _users);
        if (left < 0) throw new KernelBugException("MM-R01", $"mm {Id}: mmput without a matching mmget");
        if (left == 0) ExitMmap();
    }

    /// <summary>
    /// mmput_async: drops a reference taken by <see cref="TryGet"/> without ever tearing the
    /// address space down in the caller. When it was the last user, exit teardown (exit_mmap, the
    /// notifier release) is queued on <see cref="Machine.SystemWork"/> and runs later in process
    /// context with none of the caller's locks. For callers that must not run teardown: notifier
    /// callbacks, atomic context (page_free), holders of U or of a lock a callback takes — the
    /// code fix for HMM1017. Neither sleeps nor drops the mm synchronously.
    /// </summary>
    [ReleasesReference("mm", "this")]
    public void PutDeferred()
    {
        int left = Interlocked.Decrement(ref _users);
        if (left < 0) throw new KernelBugException("MM-R01", $"mm {Id}: mmput_async without a matching mmget");
        if (left == 0) Machine.SystemWork.Queue(ExitMmap);
    }

    /// <summary>The notifier subscriptions (mm->notifier_subscriptions), installed on first registration.</summary>
    internal IMmuNotifierHook? NotifierHook => Volatile.Read(ref _notifierHook);

    /// <summary>Installs <paramref name="hook"/> unless another thread did first; returns the installed one.</summary>
    internal IMmuNotifierHook InstallNotifierHook(IMmuNotifierHook hook)
        => Interlocked.CompareExchange(ref _notifierHook, hook, null) ?? hook;

    /// <summary>mmap_assert_locked.</summary>
    internal void AssertLocked(string what)
    {
        if (!MmapLock.IsLocked)
            throw new KernelBugException("MM-R04", $"{what} requires mm {Id}'s mmap lock");
    }

    /// <summary>mmap_assert_write_locked.</summary>
    internal void AssertWriteLocked(string what)
    {
        if (!MmapLock.IsWriteLocked)
            throw new KernelBugException("MM-R04", $"{what} requires mm {Id}'s mmap lock held for write");
    }

    /// <summary>mmu_notifier_invalidate_range_start for a blockable range; returns the hook to end with.</summary>
    internal IMmuNotifierHook? InvalidateStart(NotifyEvent ev, ulong start, ulong end, object? owner = null)
    {
        var hook = NotifierHook;
        if (hook != null && !hook.InvalidateRangeStart(new NotifierRange(this, start, end, ev, blockable: true, owner)))
            throw new KernelBugException("HMM-R08", $"a blockable {ev} invalidation of [0x{start:x}, 0x{end:x}) was refused");
        return hook;
    }

    /// <summary>mmu_notifier_invalidate_range_end for a range started with <see cref="InvalidateStart"/>.</summary>
    internal void InvalidateEnd(IMmuNotifierHook? hook, NotifyEvent ev, ulong start, ulong end, object? owner = null)
        => hook?.InvalidateRangeEnd(new NotifierRange(this, start, end, ev, blockable: true, owner));

    // ---- VMA bookkeeping ------------------------------------------------------------------

    /// <summary>
    /// vma_link (and anon_vma_fork / anon_vma_clone for a copy that shares a lineage): the VMA
    /// joins the tree, its file's i_mmap and its lineage. The lineage link is made under the
    /// anon_vma rwsem for write and appends, so a fork child or a split piece comes after every
    /// VMA already linked in the walk order.
    /// </summary>
    internal void LinkVma(Vma vma)
    {
        VmaTree.Insert(vma);
        vma.File?.AddMapping(vma);
        if (vma.Anon is { } anon)
        {
            anon.Rwsem.WriteLock();
            try { anon.Vmas.Add(vma); Machine.BumpRmapGeneration(); }
            finally { anon.Rwsem.WriteUnlock(); }
        }
    }

    /// <summary>
    /// Removes a VMA: from the tree, its file's i_mmap and (unlink_anon_vmas, under the anon_vma
    /// rwsem for write) its lineage. Callers free page tables only after this, so an rmap walk
    /// never reaches a table freed under it.
    /// </summary>
    internal void UnlinkVma(Vma vma)
    {
        VmaTree.Remove(vma);
        vma.File?.RemoveMapping(vma);
        DetachAnon(vma);
        (vma.Ops as IVmOperations)?.Close(vma);
    }

    private void DetachAnon(Vma vma)
    {
        if (vma.Anon is not { } anon) return;
        bool last;
        anon.Rwsem.WriteLock();
        try { last = DetachAnonLocked(anon, vma); Machine.BumpRmapGeneration(); }
        finally { anon.Rwsem.WriteUnlock(); }
        if (last) Machine.FreeOwnerId(anon.Id);
    }

    /// <summary>Removes <paramref name="vma"/> from <paramref name="anon"/>'s VMAs (caller holds the rwsem for write); true when it was the last.</summary>
    private static bool DetachAnonLocked(AnonVma anon, Vma vma)
    {
        anon.Vmas.Remove(vma);
        return anon.Vmas.Count == 0;
    }

    /// <summary>anon_vma_prepare: gives a private VMA its anon_vma on its first anonymous page.</summary>
    internal AnonVma PrepareAnon(Vma vma)
    {
        if (vma.Anon is { } existing) return existing;
        var anon = new AnonVma(Machine.AllocateOwnerId(null));
        Machine.SetOwner(anon.Id, anon);
        anon.Vmas.Add(vma);
        vma.Anon = anon;
        return anon;
    }

    /// <summary>__split_vma: splits <paramref name="vma"/> at <paramref name="at"/>; returns the upper part.</summary>
    internal Vma SplitVma(Vma vma, ulong at)
    {
        if (at <= vma.Start || at >= vma.End || !Page.IsAligned(at))
            throw new KernelBugException("MM-R02", $"bad split of {vma} at 0x{at:x}");
        // vma_adjust_trans_huge: a PMD leaf straddling the split point is split first.
        if ((at & (Page.PmdSize - 1)) != 0 && !vma.IsHugeTlb) SplitHugePmdAt(vma, at);
        var upper = new Vma(this, at, vma.End, vma.Flags, vma.File, vma.PgOff + ((at - vma.Start) >> Page.Shift), vma.Anon) { Ops = vma.Ops };
        // vma_prepare: the shrink of the lower part and the link of the upper one are one step
        // for an rmap walk (anon_vma rwsem for write), so it finds each page in exactly one piece.
        var anon = vma.Anon;
        anon?.Rwsem.WriteLock();
        try
        {
            VmaTree.Remove(vma);
            vma.End = at;
            VmaTree.Insert(vma);
            VmaTree.Insert(upper);
            upper.File?.AddMapping(upper);
            anon?.Vmas.Add(upper);
            if (anon != null) Machine.BumpRmapGeneration();
        }
        finally { anon?.Rwsem.WriteUnlock(); }
        return upper;
    }

    /// <summary>Splits VMAs so that <paramref name="start"/> and <paramref name="end"/> are VMA boundaries; returns the VMAs inside.</summary>
    internal List<Vma> IsolateRange(ulong start, ulong end)
    {
        var first = VmaTree.Lookup(start);
        if (first != null && first.Start < start) SplitVma(first, start);
        var last = VmaTree.Lookup(end - 1);
        if (last != null && last.End > end) SplitVma(last, end);
        return VmaTree.Overlapping(start, end);
    }

    private static bool CanMerge(Vma a, Vma b)
    {
        if (a.End != b.Start || a.Flags != b.Flags || !ReferenceEquals(a.File, b.File) || a.Ops != null || b.Ops != null) return false;
        if (a.PgOff + ((a.End - a.Start) >> Page.Shift) != b.PgOff) return false;
        return a.Anon == null || b.Anon == null || ReferenceEquals(a.Anon, b.Anon);
    }

    /// <summary>vma_merge: merges <paramref name="vma"/> with compatible neighbours; returns the surviving VMA.</summary>
    internal Vma MergeAround(Vma vma)
    {
        int i = VmaTree.IndexAfter(vma.Start);
        if (i > 0 && CanMerge(VmaTree[i - 1], vma))
        {
            var prev = VmaTree[i - 1];
            Absorb(prev, vma);
            vma = prev;
            i--;
        }
        if (i + 1 < VmaTree.Count && CanMerge(vma, VmaTree[i + 1])) Absorb(vma, VmaTree[i + 1]);
        return vma;
    }

    private void Absorb(Vma lower, Vma upper)
    {
        // vma_prepare / vma_complete: the survivor's growth and the upper VMA's removal are one
        // step for an rmap walk (anon_vma rwsem for write).
        var anon = lower.Anon ?? upper.Anon;
        bool last = false;
        anon?.Rwsem.WriteLock();
        try
        {
            if (lower.Anon == null && anon != null)
            {
                // Link the survivor first so the lineage never becomes empty (and its id freed).
                lower.Anon = anon;
                anon.Vmas.Add(lower);
            }
            VmaTree.Remove(upper);
            upper.File?.RemoveMapping(upper);
            if (upper.Anon is { } upperAnon) last = DetachAnonLocked(upperAnon, upper);
            VmaTree.Remove(lower);
            lower.End = upper.End;
            VmaTree.Insert(lower);
            if (anon != null) Machine.BumpRmapGeneration();
        }
        finally { anon?.Rwsem.WriteUnlock(); }
        if (last) Machine.FreeOwnerId(anon!.Id);
        (upper.Ops as IVmOperations)?.Close(upper);
    }

    /// <summary>
    /// vma_expand / the in-place growth of mremap: moves <paramref name="vma"/>'s end to
    /// <paramref name="end"/> under the anon_vma rwsem for write (vma_prepare).
    /// </summary>
    internal void ExpandVma(Vma vma, ulong end)
    {
        var anon = vma.Anon;
        anon?.Rwsem.WriteLock();
        try
        {
            VmaTree.Remove(vma);
            vma.End = end;
            VmaTree.Insert(vma);
        }
        finally { anon?.Rwsem.WriteUnlock(); }
    }

    /// <inheritdoc/>
    public override string ToString() => $"mm {Id}";
}
