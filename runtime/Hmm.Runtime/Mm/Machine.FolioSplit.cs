using System.Runtime.CompilerServices;
using Hmm.Runtime.Interleaving;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class Machine
{
    /// <summary>
    /// split_huge_page / split_folio: turns the 2 MiB anonymous folio headed at
    /// <paramref name="head"/> into 512 independent base pages. The caller holds the folio lock
    /// and <paramref name="callerRefs"/> references. As in the kernel: every PMD mapping is split
    /// first; then every mapping, in any address space, becomes a migration entry (unmap_folio);
    /// the refcount is frozen at exactly the caller's references (folio_ref_freeze), so a
    /// concurrent speculative reference either made the freeze fail or fails itself
    /// (<see cref="TryGetPage"/>); only then are the subpages' metadata rewritten, the counts
    /// unfrozen and the migration entries turned back into mappings of the subpages
    /// (remap_page). Subpages nothing maps are freed. Fails — every mapping back, nothing split —
    /// when the folio is pinned or referenced beyond its mappings and the caller's references
    /// (can_split_folio, then the freeze: EAGAIN in the kernel).
    /// </summary>
    /// <remarks>
    /// The head stays locked and keeps the caller's references; the tails are locked and hold
    /// one temporary reference each while their mappings come back (waiters on their migration
    /// entries wait for them), then are unlocked and released.
    /// </remarks>
    internal bool TrySplitFolio(ulong head, int callerRefs)
    {
        if (Frames.Order(head) != Page.PmdOrder || (Frames.Flags(head) & (PageFlags.HugeTlb | PageFlags.Zero)) != 0) return false;
        if (OwnerOf(Frames.Owner(head)) is not AnonVma anon || Frames.PinCount(head) != 0) return false;
        // split_huge_page_to_list_to_order: anon_vma_lock_write across unmap, split and remap, so
        // no VMA of the lineage appears, moves or goes meanwhile; the walks below run locked
        // (rmap_walk_locked). The folio lock the caller holds keeps the folio in this lineage.
        anon.Rwsem.WriteLock();
        try { return SplitLocked(anon, head, callerRefs); }
        finally { anon.Rwsem.WriteUnlock(); }
    }

    private bool SplitLocked(AnonVma anon, ulong head, int callerRefs)
    {
        // can_split_folio: a cheap early refusal before anything changes. Every mapping holds one
        // reference: one per PTE mapping of a subpage, one per PMD mapping of the whole folio.
        if (Volatile.Read(ref Frames.RefCount(head)) != MappedPages(head) + Volatile.Read(ref Frames.EntireMapCount(head)) + callerRefs) return false;

        UnmapFolio(anon, head);
        TestHooks.Fire(TestHookPoint.FolioSplitUnmapped, this, head);
        // Every mapping is a migration entry now, so the caller's references are all that may
        // remain (a PMD mapping left would mean a VMA the walk did not visit: none can be linked
        // under the rwsem held for write). A mapping the walk missed (a fork copying one in meanwhile) holds a reference
        // too, and so does a pin or a speculative get: any of them makes the freeze fail.
        if (Volatile.Read(ref Frames.EntireMapCount(head)) != 0 || MappedPages(head) != 0 || Frames.PinCount(head) != 0 || !TryFreezeRefs(head, callerRefs))
        {
            MigrationEntries.Remove(this, head, Page.PmdPages, head);   // remap_page
            return false;
        }
        TestHooks.Fire(TestHookPoint.FolioRefsFrozen, this, head);

        if ((Frames.Flags(head) & PageFlags.Device) != 0) DeviceMemory?.FolioSplit(head);
        var keep = Frames.Flags(head) & (PageFlags.Anon | PageFlags.Dirty | PageFlags.Lru | PageFlags.Device);
        int owner = Frames.Owner(head);
        ulong index = Frames.Index(head);
        for (ulong i = 1; i < Page.PmdPages; i++)
        {
            // __split_huge_page_tail: a locked folio of its own, frozen at 0 until unfrozen below.
            ulong pfn = head + i;
            Frames.Flags(pfn) = (Frames.Flags(pfn) & (PageFlags.AnonExclusive | PageFlags.LazyFree)) | keep | PageFlags.Locked;
            Frames.Order(pfn) = 0;
            Frames.Owner(pfn) = owner;
            Frames.Index(pfn) = index + i;
            Volatile.Write(ref Frames.RefCount(pfn), 0);
        }
        Frames.ClearFlags(head, PageFlags.Head);
        Frames.Order(head) = 0;
        Frames.EntireMapCount(head) = 0;
        for (ulong i = 1; i < Page.PmdPages; i++) UnfreezeRefs(head + i, 1);   // the split's own reference on each tail
        UnfreezeRefs(head, callerRefs);

        // remap_page: the migration entries become mappings of the subpages, each taking its reference.
        MigrationEntries.Remove(this, head, Page.PmdPages, head);
        for (ulong i = 1; i < Page.PmdPages; i++)
        {
            UnlockPage(head + i);
            PutPage(head + i);   // frees the subpages nothing maps
        }
        return true;
    }

    /// <summary>folio_mapcount over the subpages' PTE mappings of the 2 MiB folio at <paramref name="head"/>.</summary>
    private long MappedPages(ulong head)
    {
        long mapped = 0;
        for (ulong i = 0; i < Page.PmdPages; i++) mapped += Volatile.Read(ref Frames.MapCount(head + i));
        return mapped;
    }

    /// <summary>
    /// unmap_folio (try_to_migrate with TTU_SPLIT_HUGE_PMD): VMA by VMA in link order, as
    /// rmap_walk_anon visits them, every mapping of the folio in that VMA is handled before the
    /// next VMA is looked at: a PMD mapping is split into PTEs, then every PTE mapping — present,
    /// device-private or device-exclusive — becomes a migration entry, with one CLEAR invalidation
    /// and one TLB flush per VMA. Each entry is re-checked under the PTL (page_vma_mapped_walk).
    /// </summary>
    /// <remarks>
    /// The per-VMA order matters for fork: dup_mmap links the child's VMA after the parent's and
    /// then copies the parent's entries under the parent's page-table lock. A copy made while the
    /// walk is at the parent (a PMD not yet split, or PTEs not yet converted) is in the child when
    /// the walk gets there; a copy made after is of migration entries, which remap_page restores.
    /// A walk that probed every VMA first missed the first kind and had to refuse the split.
    /// </remarks>
    private void UnmapFolio(AnonVma anon, ulong head)
    {
        var kinds = PteKindSet.Of(PteKind.Present, PteKind.DevicePrivate, PteKind.DeviceExclusive);
        var vmas = anon.Vmas;
        for (int v = 0; v < vmas.Count; v++)
        {
            var vma = vmas[v];
            var scratch = Rmap.Scratch();
            Rmap.CollectVma(this, anon, vma, head, Page.PmdPages, kinds, scratch);
            if (scratch.Count == 0) continue;
            var mm = scratch[0].Mm;
            TestHooks.Fire(TestHookPoint.FolioSplitVisit, mm, scratch[0].Address);
            // split_huge_pmd_locked for this VMA's PMD mappings, then look again: the split left PTEs.
            bool anyHuge = false;
            for (int h = 0; h < scratch.Count; h++) anyHuge |= scratch[h].Huge;
            if (anyHuge)
            {
                var huge = scratch.ToArray();   // the invalidation callbacks below may walk again on this thread
                foreach (var hit in huge)
                    if (hit.Huge) hit.Mm.SplitHugePmd(hit.Vma, hit.Address, notify: true);
                scratch = Rmap.Scratch();
                Rmap.CollectVma(this, anon, vma, head, Page.PmdPages, kinds, scratch);
            }
            var hits = scratch.ToArray();   // the invalidation callbacks below may walk again on this thread
            ulong lo = ulong.MaxValue, hi = 0;
            foreach (var hit in hits)
            {
                if (hit.Huge) continue;
                lo = Math.Min(lo, hit.Address);
                hi = Math.Max(hi, hit.Address + Page.Size);
            }
            if (lo >= hi) continue;
            var hook = mm.InvalidateStart(NotifyEvent.Clear, lo, hi);
            mm.PageTableLock.Lock();
            try
            {
                foreach (var hit in hits)
                {
                    if (hit.Huge) continue;
                    ref ulong slot = ref mm.SlotFor(hit.Address, huge: false);
                    if (Unsafe.IsNullRef(ref slot)) continue;
                    var e = new Pte(Volatile.Read(ref slot));
                    if (e.Kind is PteKind.Present or PteKind.DevicePrivate or PteKind.DeviceExclusive && !e.IsHuge && e.Pfn - head < Page.PmdPages)
                        MigrationEntries.ToMigrationEntry(this, mm, ref slot, huge: false);
                }
            }
            finally { mm.PageTableLock.Unlock(); }
            mm.Tlb.Flush();   // try_to_migrate_one: ptep_clear_flush
            mm.InvalidateEnd(hook, NotifyEvent.Clear, lo, hi);
        }
    }
}
