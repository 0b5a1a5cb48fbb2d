using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

/// <summary>
/// The outcome of scanning or collapsing one 2 MiB block (mm/khugepaged.c enum scan_result, the
/// values MADV_COLLAPSE of a private anonymous block can meet).
/// </summary>
internal enum CollapseScan : byte
{
    /// <summary>SCAN_SUCCEED: the block is now mapped by a PMD.</summary>
    Succeed,
    /// <summary>SCAN_PMD_MAPPED: the block was already mapped by a PMD leaf; counts as done.</summary>
    PmdMapped,
    /// <summary>SCAN_PMD_NULL: no page-table level to reach the PMD, or a non-present PMD entry; the walk goes on.</summary>
    PmdNull,
    /// <summary>SCAN_PMD_NONE: the PMD slot is empty; not in madvise_collapse's continue list, so the walk stops.</summary>
    PmdNone,
    /// <summary>SCAN_PTE_NON_PRESENT: an entry that is still not present when the pages are isolated.</summary>
    PteNonPresent,
    /// <summary>SCAN_PAGE_RO: no PTE of the block is writable.</summary>
    PageRo,
    /// <summary>SCAN_PAGE_NULL: no normal page behind a present PTE (special mapping) or a ZONE_DEVICE page.</summary>
    PageNull,
    /// <summary>SCAN_PAGE_ANON: a page that is not anonymous; not in the continue list, the walk stops.</summary>
    PageAnon,
    /// <summary>SCAN_PAGE_LOCK: a folio is locked (someone is migrating or isolating it).</summary>
    PageLock,
    /// <summary>SCAN_PAGE_COUNT: a folio holds references beyond its mappings (a GUP pin).</summary>
    PageCount,
    /// <summary>SCAN_ALLOC_HUGE_PAGE_FAIL: no 2 MiB folio; the walk stops.</summary>
    AllocFail,
}

public sealed partial class AddressSpace
{
    /// <summary>
    /// madvise_collapse over one VMA's part [start, end) of the range (reference D, "khugepaged /
    /// MADV_COLLAPSE"): every 2 MiB block fully inside is scanned and, if suitable, copied into one new
    /// 2 MiB folio mapped by a PMD, raising CLEAR over the PMD range. Holes and the zero page read as
    /// zeros; pages shared with another mm (after fork) are copied too (MADV_COLLAPSE, unlike
    /// khugepaged, has no max_ptes_shared / max_ptes_none limit).
    /// </summary>
    /// <remarks>
    /// <para>The result follows madvise_collapse exactly: success only if every block ends PMD-mapped
    /// (collapsed now or before, SCAN_PMD_MAPPED). A block that fails with a result in the kernel's
    /// continue list (SCAN_PMD_NULL, SCAN_PTE_NON_PRESENT, SCAN_PAGE_RO, SCAN_PAGE_NULL,
    /// SCAN_PAGE_LOCK, SCAN_PAGE_COUNT) is left untouched and the next block is tried; any other
    /// failure (SCAN_PMD_NONE, SCAN_PAGE_ANON, SCAN_ALLOC_HUGE_PAGE_FAIL) ends the walk. The errno is
    /// madvise_collapse_errno of the LAST failure: ENOMEM for the allocation, EAGAIN for the transient
    /// ones (a locked folio, a folio with an extra reference such as a GUP pin), EINVAL for the rest.
    /// A part holding no whole block with its aligned start past its aligned end (a range inside one
    /// block) is EINVAL too: the kernel's block count (hend - hstart) wraps and can never be met.
    /// Blocks collapsed before a failure stay collapsed (nothing to undo in Linux either).</para>
    /// <para>As collapse_huge_page: the lineage's anon_vma rwsem is held for write from before the
    /// pages are checked until the PMD leaf is installed, so no rmap walk (an eviction's
    /// try_to_migrate, a THP split, the young walk) runs against the block while its pages are
    /// copied. (The kernel drops the rwsem once the source folios are isolated and locked, which
    /// keeps every walker that would change them out; the simulator, which does not isolate,
    /// keeps the rwsem instead.)</para>
    /// <para>Difference from Linux: for MADV_COLLAPSE, hpage_collapse_scan_pmd lets swap-like entries
    /// through and collapse_huge_page swaps them in first (__collapse_huge_page_swapin, which for a
    /// device-private entry means migrate_to_ram, and restores a device-exclusive entry). The
    /// simulator does not fault pages back in from inside madvise: a block with any non-present
    /// entry is reported as SCAN_PTE_NON_PRESENT (EINVAL), the result __collapse_huge_page_isolate
    /// gives for an entry the swap-in did not bring back.</para>
    /// </remarks>
    private void Collapse(Vma vma, ulong start, ulong end)
    {
        ulong hstart = (start + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        ulong hend = end & ~(Page.PmdSize - 1);
        if (hstart > hend)
            throw Fail(Errno.EINVAL, $"MADV_COLLAPSE of [0x{start:x}, 0x{end:x}) in {vma}: no 2 MiB block lies inside (madvise_collapse's block count cannot be met)");
        var lastFail = CollapseScan.Succeed;
        for (ulong block = hstart; block < hend; block += Page.PmdSize)
        {
            var result = CollapseBlock(vma, block);
            if (result is CollapseScan.Succeed or CollapseScan.PmdMapped) continue;
            lastFail = result;
            if (result is CollapseScan.PmdNone or CollapseScan.PageAnon or CollapseScan.AllocFail) break;   // "other error, exit"
        }
        if (lastFail != CollapseScan.Succeed)
            throw Fail(CollapseErrno(lastFail), $"MADV_COLLAPSE could not collapse every block of [0x{start:x}, 0x{end:x}) in {vma}: last failure {lastFail}");
    }

    /// <summary>madvise_collapse_errno: the errno MADV_COLLAPSE reports for the last block that failed.</summary>
    internal static Errno CollapseErrno(CollapseScan result) => result switch
    {
        CollapseScan.AllocFail => Errno.ENOMEM,
        CollapseScan.PageCount or CollapseScan.PageLock => Errno.EAGAIN,
        _ => Errno.EINVAL,
    };

    /// <summary>hpage_collapse_scan_pmd + collapse_huge_page for one block (caller holds the mmap lock for write).</summary>
    private CollapseScan CollapseBlock(Vma vma, ulong block)
    {
        ulong[]? pmdTable = Tables.PmdTable(block, allocate: false);
        if (pmdTable == null) return CollapseScan.PmdNull;                 // mm_find_pmd found no PUD
        ref ulong pmd = ref pmdTable[PageTables.PmdIndex(block)];
        ulong pmdValue = Volatile.Read(ref pmd);
        if (pmdValue == 0) return CollapseScan.PmdNone;
        if (!PageTables.IsTable(pmdValue))
            return new Pte(pmdValue).Kind == PteKind.Present ? CollapseScan.PmdMapped : CollapseScan.PmdNull;
        var anon = PrepareAnon(vma);
        anon.Rwsem.WriteLock();
        try { return CollapseBlockLocked(vma, block, ref pmd); }
        finally { anon.Rwsem.WriteUnlock(); }
    }

    /// <summary>
    /// The per-PTE scan (hpage_collapse_scan_pmd's order of checks, repeated by
    /// __collapse_huge_page_isolate) and, when it passes, the copy into a new folio and the PMD swap
    /// (collapse_huge_page). Caller holds the mmap lock and the anon_vma rwsem for write. A failed
    /// block is left exactly as it was.
    /// </summary>
    private CollapseScan CollapseBlockLocked(Vma vma, ulong block, ref ulong pmd)
    {
        ulong[] ptes = Tables.TableOf(pmd);
        bool writable = false, nonPresent = false;
        ulong checkedHead = ulong.MaxValue;
        for (int i = 0; i < Page.PmdPages; i++)
        {
            var pte = new Pte(ptes[i]);
            if (pte.Kind == PteKind.None) continue;
            if (pte.Kind != PteKind.Present) { nonPresent = true; continue; }   // swap-like: left to the swap-in (see Collapse)
            if (IsZeroPfn(pte.Pfn)) continue;                                    // none_or_zero
            if (pte.IsWritable) writable = true;
            if (pte.IsSpecial || Machine.IsDevicePage(pte.Pfn)) return CollapseScan.PageNull;   // !vm_normal_page || is_zone_device_page
            ulong head = Frames.FolioHead(pte.Pfn);
            if (head == checkedHead) continue;                                   // subpages of a folio already checked
            checkedHead = head;
            var flags = Frames.Flags(head);
            if ((flags & PageFlags.Anon) == 0) return CollapseScan.PageAnon;
            if ((flags & PageFlags.Locked) != 0) return CollapseScan.PageLock;
            if (!RefcountSuitable(head)) return CollapseScan.PageCount;
        }
        if (!writable) return CollapseScan.PageRo;
        if (nonPresent) return CollapseScan.PteNonPresent;
        if (!Machine.Allocator.TryAllocate(Page.PmdOrder, out ulong huge)) return CollapseScan.AllocFail;
        Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.CollapseCopying, this, block);
        for (int i = 0; i < Page.PmdPages; i++)
        {
            var pte = new Pte(ptes[i]);
            ulong dst = huge + (ulong)i;
            if (pte.Kind == PteKind.None || IsZeroPfn(pte.Pfn)) Machine.Memory.Clear(dst);
            else Machine.CopyPages(dst, pte.Pfn, 0);
        }
        InitLargeAnon(huge, PrepareAnon(vma), vma.LinearIndex(block));
        var hook = InvalidateStart(NotifyEvent.Clear, block, block + Page.PmdSize);
        // collapse_huge_page swaps the table for the leaf under the page-table lock (and the
        // anon_vma lock): an rmap walker of another mm re-walks to the slot under that lock.
        PageTableLock.Lock();
        try
        {
            for (int i = 0; i < Page.PmdPages; i++) ZapPte(ref ptes[i]);
            Frames.EntireMapCount(huge) = 1;
            ulong table = pmd;
            Volatile.Write(ref pmd, Pte.Present(huge, writable: (vma.Flags & VmFlags.Write) != 0, dirty: true, huge: true).Raw);
            Tables.FreeTable(table);
        }
        finally { PageTableLock.Unlock(); }
        Interlocked.Add(ref _rssAnon, Page.PmdPages);
        InvalidateEnd(hook, NotifyEvent.Clear, block, block + Page.PmdSize);
        return CollapseScan.Succeed;
    }

    /// <summary>
    /// is_refcount_suitable: a folio's references are exactly its mappings (every PTE of every
    /// subpage, every PMD); anything more (a GUP pin, a reference someone took) makes the copy
    /// unsafe, and MADV_COLLAPSE reports it as transient (SCAN_PAGE_COUNT, EAGAIN).
    /// </summary>
    private bool RefcountSuitable(ulong head)
    {
        if (Frames.PinCount(head) != 0) return false;
        long maps = Frames.EntireMapCount(head);
        ulong nr = (Frames.Flags(head) & PageFlags.Head) != 0 ? 1UL << Frames.Order(head) : 1;
        for (ulong p = 0; p < nr; p++) maps += Frames.MapCount(head + p);
        return Frames.RefCount(head) == maps;
    }
}
