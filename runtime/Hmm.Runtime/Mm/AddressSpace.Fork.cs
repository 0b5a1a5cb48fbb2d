using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class AddressSpace
{
    /// <summary>
    /// dup_mmap: copies every VMA (except VM_DONTCOPY) into <paramref name="child"/> and, for VMAs
    /// that have anonymous pages (an anon_vma) or are hugetlb-private, copies the page tables
    /// (copy_page_range). In a COW mapping this raises PROTECTION_PAGE over the whole parent VMA
    /// (reference D, "fork") and write-protects both sides; a pinned anonymous page is copied for
    /// the child at once instead of shared (page_needs_cow_for_dma). Shared and untouched mappings
    /// are not copied: the child faults them in.
    /// </summary>
    internal void ForkInto(AddressSpace child)
    {
        MmapLock.WriteLock();
        try
        {
            CheckAlive();
            child.MmapLock.WriteLockNested(1);
            try
            {
                for (int i = 0; i < VmaTree.Count; i++)
                {
                    var vma = VmaTree[i];
                    if ((vma.Flags & VmFlags.DontCopy) != 0) continue;
                    var copy = new Vma(child, vma.Start, vma.End, vma.Flags, vma.File, vma.PgOff, vma.Anon) { Ops = vma.Ops };
                    child.LinkVma(copy);
                    if (vma.Anon == null && (vma.Flags & (VmFlags.PfnMap | VmFlags.MixedMap)) == 0) continue;
                    Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.ForkVmaLinked, this, vma.Start);
                    CopyPageRange(vma, child);
                }
            }
            finally { child.MmapLock.WriteUnlock(); }
        }
        finally { MmapLock.WriteUnlock(); }
    }

    /// <summary>
    /// copy_page_range. The child's VMA is already linked to the lineage (anon_vma_fork ran in
    /// <see cref="ForkInto"/>, after the parent's VMA in the walk order), so an rmap walk may visit
    /// the child while its entries are copied: each page table is copied holding the parent's
    /// page-table lock and the child's (nested), as copy_pte_range does. A walk that passed the
    /// parent's entry before the copy finds the copy in the child afterwards; one that reaches it
    /// later finds it already changed in the parent. A device-exclusive entry is restored with both
    /// locks dropped (that takes the folio lock, which sleeps) and the slot read again.
    /// </summary>
    private void CopyPageRange(Vma vma, AddressSpace child)
    {
        bool cow = vma.IsCowMapping;
        var hook = cow ? InvalidateStart(NotifyEvent.ProtectionPage, vma.Start, vma.End) : null;
        try
        {
            for (ulong va = vma.Start; va < vma.End;)
            {
                ulong pmdEnd = Math.Min((va + Page.PmdSize) & ~(Page.PmdSize - 1), vma.End);
                ulong[]? pmdTable = Tables.PmdTable(va, allocate: false);
                if (pmdTable == null) { va = pmdEnd; continue; }
                ref ulong pmd = ref pmdTable[PageTables.PmdIndex(va)];
                CopyPmdRange(vma, child, va, pmdEnd, ref pmd, cow);
                va = pmdEnd;
            }
        }
        finally
        {
            if (cow) InvalidateEnd(hook, NotifyEvent.ProtectionPage, vma.Start, vma.End);
        }
    }

    /// <summary>copy_pmd_range for one PMD slot: a leaf whole (copy_huge_pmd) or its PTE table entry by entry.</summary>
    private void CopyPmdRange(Vma vma, AddressSpace child, ulong va, ulong pmdEnd, ref ulong pmd, bool cow)
    {
        ulong a = va;
        while (a < pmdEnd)
        {
            ulong restoreAt = 0;
            bool split = false;
            PageTableLock.Lock();
            child.PageTableLock.Lock(1);
            try
            {
                ulong cur = Volatile.Read(ref pmd);
                if (cur == 0) return;
                if (!PageTables.IsTable(cur))
                {
                    if (CopyHugePmd(vma, child, va, ref pmd, cow)) return;
                    split = true;   // a pinned THP: split it (outside the locks), then copy PTEs
                }
                else
                {
                    ulong[] ptes = Tables.TableOf(cur);
                    ulong[]? childPtes = null;
                    for (; a < pmdEnd; a += Page.Size)
                    {
                        ref ulong e = ref ptes[PageTables.PteIndex(a)];
                        ulong raw = Volatile.Read(ref e);
                        if (raw == 0) continue;
                        if (new Pte(raw).Kind == PteKind.DeviceExclusive) { restoreAt = a; break; }
                        childPtes ??= child.Tables.EnsurePteTable(ref child.Tables.PmdTable(a, allocate: true)![PageTables.PmdIndex(a)]);
                        childPtes[PageTables.PteIndex(a)] = CopyPte(vma, child, ref e, cow);
                    }
                }
            }
            finally
            {
                child.PageTableLock.Unlock();
                PageTableLock.Unlock();
            }
            if (split) SplitHugePmd(vma, va & ~(Page.PmdSize - 1), notify: true);
            else if (restoreAt != 0)
            {
                // copy_nonpresent_pte: an exclusive entry in the parent is restored first (the
                // device loses its atomic access), then copied as a normal present entry on the
                // next pass. try_restore_exclusive_pte: inside copy_page_range's PROTECTION_PAGE
                // window, no event of its own (reference D fork).
                ref ulong slot = ref SlotFor(restoreAt, huge: false);
                if (!System.Runtime.CompilerServices.Unsafe.IsNullRef(ref slot))
                {
                    var pte = new Pte(Volatile.Read(ref slot));
                    if (pte.Kind == PteKind.DeviceExclusive) RestoreExclusive(restoreAt, ref slot, pte, notify: false);
                }
                Thread.Yield();   // a THP split may be turning it into a migration entry meanwhile
            }
        }
    }

    /// <summary>copy_present_pte / copy_nonpresent_pte: returns the child's entry, write-protecting the parent's for COW.</summary>
    private ulong CopyPte(Vma vma, AddressSpace child, ref ulong slot, bool cow)
    {
        ulong raw = slot;
        var pte = new Pte(raw);
        switch (pte.Kind)
        {
            case PteKind.Present:
            {
                ulong pfn = pte.Pfn;
                if (IsZeroPfn(pfn)) return raw;
                ulong head = Frames.FolioHead(pfn);
                bool anon = (Frames.Flags(head) & PageFlags.Anon) != 0;
                if (anon && Frames.PinCount(head) != 0)
                {
                    // A possibly DMA-pinned page is copied for the child now, so the parent keeps it.
                    if (!Machine.Allocator.TryAllocate(0, out ulong copy))
                        throw new ErrnoException(Errno.ENOMEM, "out of memory copying a pinned page at fork");
                    Machine.CopyPages(copy, pfn, 0);
                    InitAnonPage(copy, vma.Anon!, Frames.Index(pfn));
                    Frames.MapCount(copy) = 1;
                    Interlocked.Increment(ref child._rssAnon);
                    return EntryForVma(vma, copy, huge: false);
                }
                Interlocked.Increment(ref Frames.MapCount(pfn));
                Machine.GetPage(head);
                child.AccountRss(head, 1);
                if (anon) Frames.ClearFlags(pfn, PageFlags.AnonExclusive);
                if (cow && pte.IsWritable)
                {
                    raw &= ~Pte.WriteBit;
                    Volatile.Write(ref slot, raw);
                }
                // __copy_present_ptes: the child's entry starts old (only the parent has used the page).
                return raw & ~Pte.YoungBit;
            }
            case PteKind.DevicePrivate:
            {
                ulong pfn = pte.Pfn;
                Interlocked.Increment(ref Frames.MapCount(pfn));
                Machine.GetPage(Frames.FolioHead(pfn));
                Interlocked.Increment(ref child._rssAnon);
                // folio_try_dup_anon_rmap_pte: the device page is now shared with the child, so it
                // is no longer exclusive — nor is the system page it migrates back to.
                Frames.ClearFlags(pfn, PageFlags.AnonExclusive);
                if (cow && pte.IsWritable)
                {
                    raw &= ~Pte.WriteBit;
                    Volatile.Write(ref slot, raw);
                }
                return raw;
            }
            case PteKind.DeviceExclusive:
                // CopyPmdRange restores these (with the page-table locks dropped) before copying.
                throw new KernelBugException("MM-R05", "copy_pte_range reached a device-exclusive entry it had not restored");
            case PteKind.Migration:
                // A shared migration entry is only readable (never exclusive) in both mms: the page
                // it migrates to must not come out exclusive.
                if ((Frames.Flags(Frames.FolioHead(pte.Pfn)) & PageFlags.Anon) != 0) Frames.ClearFlags(pte.Pfn, PageFlags.AnonExclusive);
                if (cow && pte.IsWritable)
                {
                    raw &= ~Pte.WriteBit;
                    Volatile.Write(ref slot, raw);
                }
                return raw;
            default:
                return raw;
        }
    }

    /// <summary>
    /// copy_present_page: mk_pte(new, vma->vm_page_prot) made dirty and, where the VMA allows,
    /// writable — so a PROT_NONE VMA gets a PROT_NONE entry for the child's copy.
    /// </summary>
    private static ulong EntryForVma(Vma vma, ulong pfn, bool huge)
    {
        if (!vma.IsAccessible) return (Pte.Present(pfn, writable: false, dirty: true, huge: huge).Raw | Pte.ProtNoneBit);
        return Pte.Present(pfn, writable: (vma.Flags & VmFlags.Write) != 0, dirty: true, huge: huge).Raw;
    }

    /// <summary>copy_huge_pmd / copy_hugetlb_page_range, under both page-table locks; false when the PMD must be split (pinned THP) and PTEs copied.</summary>
    private bool CopyHugePmd(Vma vma, AddressSpace child, ulong va, ref ulong pmd, bool cow)
    {
        ulong raw = pmd;
        var leaf = new Pte(raw);
        ulong pmdStart = va & ~(Page.PmdSize - 1);
        ulong[] childPmds = child.Tables.PmdTable(pmdStart, allocate: true)!;
        ref ulong childSlot = ref childPmds[PageTables.PmdIndex(pmdStart)];
        if (leaf.Kind == PteKind.DeviceExclusive || (leaf.Kind == PteKind.Present && IsZeroPfn(leaf.Pfn)) || leaf.Kind is not (PteKind.Present or PteKind.DevicePrivate))
        {
            if (leaf.Kind == PteKind.DeviceExclusive) throw new KernelBugException("MM-R05", "device-exclusive PMD entries do not exist (make_device_exclusive splits the PMD)");
            if (leaf.Kind == PteKind.Migration && cow && leaf.IsWritable) { raw &= ~Pte.WriteBit; Volatile.Write(ref pmd, raw); }
            if (leaf.Kind == PteKind.Migration && (Frames.Flags(leaf.Pfn) & PageFlags.Anon) != 0) Frames.ClearFlags(leaf.Pfn, PageFlags.AnonExclusive);
            childSlot = raw;
            return true;
        }
        ulong head = leaf.Pfn;
        if (leaf.Kind == PteKind.Present && Frames.PinCount(head) != 0)
        {
            if (!vma.IsHugeTlb) return false;   // the caller splits it (__split_huge_pmd takes the PTL) and copies PTEs
            if (!Machine.TryAllocateHugeTlb(out ulong copy))
                throw new ErrnoException(Errno.ENOMEM, "hugetlb pool empty copying a pinned page at fork");
            Machine.CopyPages(copy, head, Page.PmdOrder);
            Frames.Flags(copy) |= PageFlags.Anon | PageFlags.AnonExclusive;
            Frames.Owner(copy) = Frames.Owner(head);
            Frames.Index(copy) = Frames.Index(head);
            Frames.EntireMapCount(copy) = 1;
            child.AccountRss(copy, Page.PmdPages);
            childSlot = EntryForVma(vma, copy, huge: true);
            return true;
        }
        Interlocked.Increment(ref Frames.EntireMapCount(head));
        Machine.GetPage(head);
        child.AccountRss(head, Page.PmdPages);
        Frames.ClearFlags(head, PageFlags.AnonExclusive);
        if (cow && leaf.IsWritable)
        {
            raw &= ~Pte.WriteBit;
            Volatile.Write(ref pmd, raw);
        }
        // copy_huge_pmd gives the child an old PMD (pmd_mkold); the hugetlb copy keeps the bit.
        childSlot = leaf.Kind == PteKind.Present && !vma.IsHugeTlb ? raw & ~Pte.YoungBit : raw;
        return true;
    }

    /// <summary>
    /// exit_mmap: RELEASE to the interval notifiers over [0, ULONG_MAX) and release to the
    /// whole-mm notifiers (mmu_notifier_release), then one UNMAP over the same range while every
    /// VMA is zapped and removed (reference D, "process exit").
    /// </summary>
    /// <remarks>
    /// As in Linux, the notifier release runs first and without the mmap lock: exit_mmap takes
    /// the lock only after it. A release callback may therefore take the mmap lock itself, as
    /// KVM-like users do (a secondary MMU tearing down its own mappings under mmap_read_lock)
    /// without deadlocking against exit. Nobody else can change the address space meanwhile:
    /// mm_users is zero, so every mmget_not_zero fails. (The simulator then zaps under the write
    /// lock where Linux unmaps under the read lock and takes the write lock for free_pgtables;
    /// with no other user of the mm the two are indistinguishable.)
    /// </remarks>
    private void ExitMmap()
    {
        if (IsTornDown) return;
        NotifierHook?.Release(this);
        MmapLock.WriteLock();
        try
        {
            if (IsTornDown) return;
            var hook = InvalidateStart(NotifyEvent.Unmap, 0, ulong.MaxValue);
            var all = VmaTree.ToList();
            foreach (var vma in all) ZapRange(vma, vma.Start, vma.End);
            InvalidateEnd(hook, NotifyEvent.Unmap, 0, ulong.MaxValue);
            foreach (var vma in all) UnlinkVma(vma);
            Tables.FreeRange(0, TaskSize + Page.Size);
            IsTornDown = true;
        }
        finally { MmapLock.WriteUnlock(); }
    }

    /// <summary>
    /// __oom_reap_task_mm: the OOM reaper's non-blockable teardown. For each private or anonymous
    /// VMA (hugetlb and PFNMAP skipped) it starts a non-blockable UNMAP; when a notifier refuses
    /// (-EAGAIN) that VMA is skipped and its entries stay as they were (reference D, "OOM reaper").
    /// Returns the ranges that were skipped. VMAs themselves stay until exit.
    /// </summary>
    internal List<(ulong Start, ulong End)> OomReap()
    {
        var skipped = new List<(ulong, ulong)>();
        MmapLock.WriteLock();
        try
        {
            CheckAlive();
            foreach (var vma in VmaTree.ToList())
            {
                if ((vma.Flags & (VmFlags.HugeTlb | VmFlags.PfnMap)) != 0) continue;
                if (!(vma.IsAnonymous || !vma.IsShared)) continue;
                var range = new NotifierRange(this, vma.Start, vma.End, NotifyEvent.Unmap, blockable: false);
                var hook = NotifierHook;
                if (hook != null && !hook.InvalidateRangeStart(in range))
                {
                    skipped.Add((vma.Start, vma.End));
                    continue;
                }
                ZapRange(vma, vma.Start, vma.End);
                hook?.InvalidateRangeEnd(in range);
            }
        }
        finally { MmapLock.WriteUnlock(); }
        return skipped;
    }
}
