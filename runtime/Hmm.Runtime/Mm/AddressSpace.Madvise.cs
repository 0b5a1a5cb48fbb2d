using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class AddressSpace
{
    /// <summary>
    /// madvise. EINVAL for a misaligned address, an overflowing range or an unknown advice; a zero
    /// length succeeds; ENOMEM when part of the range is unmapped (checked before anything changes:
    /// Linux applies the advice to the mapped parts first — the simulator does not half-apply).
    /// </summary>
    internal void Madvise(ulong addr, ulong length, Advice advice)
    {
        if (!Page.IsAligned(addr)) throw Fail(Errno.EINVAL, $"address 0x{addr:x} is not page aligned");
        if (advice is not (Advice.Normal or Advice.DontNeed or Advice.Free or Advice.HugePage or Advice.NoHugePage or Advice.Collapse or Advice.Cold or Advice.PageOut))
            throw Fail(Errno.EINVAL, $"unknown advice {(int)advice}");
        if (length == 0) return;
        if (!Page.TryAlignUp(length, out ulong len) || addr + len < addr) throw Fail(Errno.EINVAL, "the range overflows");
        ulong end = addr + len;
        MmapLock.WriteLock();
        try
        {
            CheckAlive();
            if (!VmaTree.Covers(addr, end)) throw Fail(Errno.ENOMEM, $"[0x{addr:x}, 0x{end:x}) is not entirely mapped");
            var vmas = VmaTree.Overlapping(addr, end);
            foreach (var vma in vmas) CheckAdvice(vma, advice, addr, end);
            switch (advice)
            {
                case Advice.DontNeed:
                    foreach (var vma in vmas) DontNeed(vma, Math.Max(addr, vma.Start), Math.Min(end, vma.End));
                    break;
                case Advice.Free:
                    foreach (var vma in vmas) LazyFree(vma, Math.Max(addr, vma.Start), Math.Min(end, vma.End));
                    break;
                case Advice.HugePage:
                case Advice.NoHugePage:
                case Advice.Normal:
                    SetHugeHint(addr, end, advice);
                    break;
                case Advice.Collapse:
                    foreach (var vma in vmas) Collapse(vma, Math.Max(addr, vma.Start), Math.Min(end, vma.End));
                    break;
                case Advice.Cold:
                case Advice.PageOut:
                    foreach (var vma in vmas) ColdOrPageOut(vma, Math.Max(addr, vma.Start), Math.Min(end, vma.End), advice == Advice.PageOut);
                    break;
            }
        }
        finally { MmapLock.WriteUnlock(); }
    }

    private void CheckAdvice(Vma vma, Advice advice, ulong start, ulong end)
    {
        switch (advice)
        {
            case Advice.DontNeed when (vma.Flags & (VmFlags.Locked | VmFlags.PfnMap)) != 0:
                throw Fail(Errno.EINVAL, $"MADV_DONTNEED on locked or PFNMAP VMA {vma}");
            case Advice.DontNeed when vma.IsHugeTlb && (((Math.Max(start, vma.Start) | Math.Min(end, vma.End)) & (Page.PmdSize - 1)) != 0):
                throw Fail(Errno.EINVAL, $"MADV_DONTNEED cuts hugetlb VMA {vma} off a 2 MiB boundary");
            case Advice.Free when !vma.IsPrivateAnon || vma.IsHugeTlb:
                throw Fail(Errno.EINVAL, $"MADV_FREE only applies to private anonymous memory, not {vma}");
            case Advice.HugePage or Advice.NoHugePage when vma.IsHugeTlb || (vma.Flags & VmFlags.Special) != 0:
                throw Fail(Errno.EINVAL, $"THP advice does not apply to {vma}");
            case Advice.Cold or Advice.PageOut when (vma.Flags & (VmFlags.Locked | VmFlags.PfnMap)) != 0 || vma.IsHugeTlb:
                throw Fail(Errno.EINVAL, $"{(advice == Advice.Cold ? "MADV_COLD" : "MADV_PAGEOUT")} on locked, PFNMAP or hugetlb VMA {vma} (can_madv_lru_vma)");
            case Advice.Collapse when !Machine.Options.TransparentHugePages || !vma.IsPrivateAnon || vma.IsHugeTlb:
                throw Fail(Errno.EINVAL, $"MADV_COLLAPSE needs THP-capable private anonymous memory, not {vma}");
        }
    }

    /// <summary>zap_page_range_single: CLEAR over the VMA intersection, then drop the pages (reference D, MADV_DONTNEED).</summary>
    private void DontNeed(Vma vma, ulong start, ulong end)
    {
        if (!vma.IsHugeTlb)
        {
            if ((start & (Page.PmdSize - 1)) != 0) SplitHugePmdAt(vma, start);
            if ((end & (Page.PmdSize - 1)) != 0) SplitHugePmdAt(vma, end);
        }
        var hook = InvalidateStart(NotifyEvent.Clear, start, end);
        ZapRange(vma, start, end);
        InvalidateEnd(hook, NotifyEvent.Clear, start, end);
    }

    /// <summary>
    /// madvise_free_single_vma: CLEAR over the range; each anonymous page mapped only here is
    /// made clean and old and marked lazy-free, so reclaim may drop it while it stays clean
    /// (<see cref="Machine.Reclaim"/>); until then it keeps its contents. A later write keeps it.
    /// Device-private entries are left alone (reference D, MADV_FREE).
    /// </summary>
    private void LazyFree(Vma vma, ulong start, ulong end)
    {
        if ((start & (Page.PmdSize - 1)) != 0) SplitHugePmdAt(vma, start);
        if ((end & (Page.PmdSize - 1)) != 0) SplitHugePmdAt(vma, end);
        var hook = InvalidateStart(NotifyEvent.Clear, start, end);
        for (ulong va = start; va < end;)
        {
            ulong pmdEnd = Math.Min((va + Page.PmdSize) & ~(Page.PmdSize - 1), end);
            ulong[]? pmdTable = Tables.PmdTable(va, allocate: false);
            if (pmdTable != null)
            {
                ref ulong pmd = ref pmdTable[PageTables.PmdIndex(va)];
                if (pmd != 0 && !PageTables.IsTable(pmd))
                {
                    // A whole THP in range: madvise_free_huge_pmd splits it and frees per page.
                    SplitHugePmd(vma, va, notify: false);
                }
                if (pmd != 0)
                {
                    // madvise_free_pte_range: under the page-table lock (rmap walkers of other mms
                    // change entries here holding only that lock).
                    PageTableLock.Lock();
                    try
                    {
                        ulong[] ptes = PageTables.IsTable(pmd) ? Tables.TableOf(pmd) : [];
                        for (ulong a = va; a < pmdEnd && ptes.Length != 0; a += Page.Size)
                        {
                            ref ulong e = ref ptes[PageTables.PteIndex(a)];
                            var pte = new Pte(e);
                            if (pte.Kind != PteKind.Present || IsZeroPfn(pte.Pfn)) continue;
                            ulong pfn = pte.Pfn, head = Frames.FolioHead(pfn);
                            // Mapped only here: no other PTE, and no PMD elsewhere (a THP still PMD-mapped by a fork sibling).
                            // Device (coherent) memory is not on the LRU: madvise_free_pte_range skips zone-device folios.
                            if ((Frames.Flags(head) & PageFlags.Anon) == 0 || Machine.IsDevicePage(head) || Frames.MapCount(pfn) != 1 || Frames.EntireMapCount(head) != 0 || Frames.PinCount(head) != 0) continue;
                            Volatile.Write(ref e, e & ~(Pte.DirtyBit | Pte.YoungBit));
                            // lru_lazyfree: the folio also loses PG_referenced.
                            Frames.ClearFlags(pfn, PageFlags.Dirty | PageFlags.Referenced);
                            Frames.SetFlags(pfn, PageFlags.LazyFree);
                        }
                    }
                    finally { PageTableLock.Unlock(); }
                }
            }
            va = pmdEnd;
        }
        InvalidateEnd(hook, NotifyEvent.Clear, start, end);
    }

    /// <summary>
    /// madvise_cold_or_pageout_pte_range over [start, end) of <paramref name="vma"/>. Only present
    /// entries of folios mapped by this mapping alone count (non-present ones, device-private or
    /// device-exclusive, are skipped, and so are zone-device (coherent) folios, which are not on
    /// the LRU, the zero page and pages shared with a fork). MADV_COLD clears each one's accessed
    /// bit directly (no notifier is asked: the secondary MMUs keep their own accessed state) and
    /// PG_referenced, deactivating it. MADV_PAGEOUT leaves the accessed bit alone, clears
    /// PG_referenced and hands the folios to reclaim with their references ignored
    /// (reclaim_pages): a clean lazy-free page is freed even if it was just used; a written one
    /// stops being lazy-free; a swap-backed anonymous page stays, the machine having no swap
    /// device (add_to_swap fails and reclaim keeps it). Raises no notifier event except reclaim's
    /// CLEAR on a page it frees.
    /// </summary>
    /// <remarks>
    /// A PMD leaf only partly inside the range is skipped (the kernel splits the folio first);
    /// one wholly inside is made old as one entry. File pages are made old by MADV_COLD, never
    /// reclaimed (the simulator has no page-cache writeback reclaim).
    /// </remarks>
    private void ColdOrPageOut(Vma vma, ulong start, ulong end, bool pageout)
    {
        for (ulong va = start; va < end;)
        {
            ulong pmdStart = va & ~(Page.PmdSize - 1);
            ulong pmdEnd = Math.Min(pmdStart + Page.PmdSize, end);
            ulong[]? pmdTable = Tables.PmdTable(va, allocate: false);
            if (pmdTable == null) { va = pmdEnd; continue; }
            ref ulong pmd = ref pmdTable[PageTables.PmdIndex(va)];
            ulong pmdRaw = Volatile.Read(ref pmd);
            if (pmdRaw == 0) { va = pmdEnd; continue; }
            PageTableLock.Lock();
            try
            {
                if (!PageTables.IsTable(pmdRaw))
                {
                    var leaf = new Pte(pmdRaw);
                    if (va == pmdStart && pmdEnd == pmdStart + Page.PmdSize && leaf.Kind == PteKind.Present && ColdCandidate(leaf.Pfn, huge: true))
                    {
                        if (!pageout) Interlocked.And(ref pmd, ~Pte.YoungBit);
                        Frames.ClearFlags(leaf.Pfn, PageFlags.Referenced);
                    }
                }
                else
                {
                    ulong[] ptes = Tables.TableOf(pmdRaw);
                    for (ulong a = va; a < pmdEnd; a += Page.Size)
                    {
                        ref ulong e = ref ptes[PageTables.PteIndex(a)];
                        var pte = new Pte(Volatile.Read(ref e));
                        if (pte.Kind != PteKind.Present || pte.IsSpecial || !ColdCandidate(pte.Pfn, huge: false)) continue;
                        if (!pageout) Interlocked.And(ref e, ~Pte.YoungBit);
                        Frames.ClearFlags(pte.Pfn, PageFlags.Referenced);
                    }
                }
            }
            finally { PageTableLock.Unlock(); }
            // reclaim_pages, after the page-table walk: references ignored.
            if (pageout && PageTables.IsTable(pmdRaw))
            {
                for (ulong a = va; a < pmdEnd; a += Page.Size)
                {
                    ref ulong slot = ref Tables.PteSlot(a);
                    if (System.Runtime.CompilerServices.Unsafe.IsNullRef(ref slot)) break;
                    var pte = new Pte(slot);
                    if (pte.Kind == PteKind.Present && !pte.IsSpecial && ColdCandidate(pte.Pfn, huge: false)) DiscardLazyFree(a, ref slot);
                }
            }
            va = pmdEnd;
        }
    }

    /// <summary>The folio of a present entry is one MADV_COLD/PAGEOUT acts on: on the LRU (not the zero page, not zone-device) and mapped only here.</summary>
    private bool ColdCandidate(ulong pfn, bool huge)
    {
        if (IsZeroPfn(pfn) || !Frames.IsOnline(pfn)) return false;
        ulong head = Frames.FolioHead(pfn);
        if (Machine.IsDevicePage(head) || (Frames.Flags(head) & (PageFlags.Anon | PageFlags.File)) == 0) return false;
        return huge ? Frames.EntireMapCount(head) == 1 && Frames.MapCount(pfn) == 0 : Frames.MapCount(pfn) == 1 && Frames.EntireMapCount(head) == 0;
    }

    private void SetHugeHint(ulong start, ulong end, Advice advice)
    {
        foreach (var vma in IsolateRange(start, end))
        {
            vma.Flags = advice switch
            {
                Advice.HugePage => (vma.Flags & ~VmFlags.NoHugePage) | VmFlags.HugePage,
                Advice.NoHugePage => (vma.Flags & ~VmFlags.HugePage) | VmFlags.NoHugePage,
                _ => vma.Flags,
            };
        }
        for (int i = VmaTree.IndexAfter(start); i < VmaTree.Count && VmaTree[i].Start < end; i++)
            i = VmaTree.IndexAfter(MergeAround(VmaTree[i]).Start);
    }
}
