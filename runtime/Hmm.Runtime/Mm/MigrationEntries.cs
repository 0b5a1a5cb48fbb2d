using System.Runtime.CompilerServices;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

/// <summary>
/// Migration entries as the mm core knows them (mm/rmap.c, mm/migrate.c): turning one mapping
/// into a migration entry (the body of try_to_migrate_one) and putting every migration entry of
/// a folio back as a mapping (remove_migration_ptes). The migration layer builds migrate_vma and
/// migrate_device on them; the mm layer itself uses them to unmap a folio it splits
/// (<see cref="Machine.TrySplitFolio"/>), as split_huge_page does.
/// </summary>
internal static partial class MigrationEntries
{
    /// <summary>
    /// Replaces a mapping entry by a migration entry (writable if the mapping was, or if it was a
    /// device-exclusive entry), dropping the mapping's page reference. Returns the src word
    /// flags (WRITE) or 0 when the slot did not hold a mapping. Caller holds the PTL.
    /// </summary>
    internal static bool ToMigrationEntry(Machine machine, AddressSpace mm, ref ulong slot, bool huge)
    {
        var e = new Pte(slot);
        if (e.Kind is not (PteKind.Present or PteKind.DevicePrivate or PteKind.DeviceExclusive)) return false;
        ulong pfn = e.Pfn, head = machine.Frames.FolioHead(pfn);
        bool write = e.IsWritable || e.Kind == PteKind.DeviceExclusive;
        // The entry carries the mapping's dirty/young/soft-dirty bits (make_migration_entry_dirty /
        // _young), so remove_migration_pte rebuilds a clean PTE for a clean page: a MADV_FREE'd page
        // that a migration attempt only unmapped and restored stays discardable. A writable
        // device-exclusive entry counts as dirty (restore_exclusive_pte makes it pte_mkdirty).
        ulong keep = e.Kind switch
        {
            PteKind.Present => e.Raw & (Pte.DirtyBit | Pte.YoungBit | Pte.SoftDirtyBit),
            PteKind.DeviceExclusive when e.IsWritable => Pte.DirtyBit,
            _ => 0,
        };
        Volatile.Write(ref slot, Pte.NonPresent(PteKind.Migration, pfn, write, huge).Raw | keep);
        if (huge) Interlocked.Decrement(ref machine.Frames.EntireMapCount(head));
        else Interlocked.Decrement(ref machine.Frames.MapCount(pfn));
        mm.AccountRss(head, huge ? -Page.PmdPages : -1);
        machine.PutPage(head);   // the mapping's reference; the migration holds its own
        return true;
    }

    /// <summary>
    /// The mapping remove_migration_pte rebuilds from migration entry <paramref name="e"/> for
    /// <paramref name="target"/>: a device-private entry for private memory, else
    /// mk_pte(new, vma->vm_page_prot) — writable when the entry was or the VMA's protection is
    /// (a shared writable mapping gets a writable entry back), dirty only when the entry was
    /// (is_migration_entry_dirty), and PROT_NONE in a VMA without access. Both the rmap walk and
    /// migrate_vma_finalize's range fast path build their entries here, so they cannot drift.
    /// </summary>
    internal static ulong RestoredEntry(Pte e, ulong target, bool devicePrivate, bool vmaProtWritable, bool vmaNoAccess, bool huge)
    {
        bool writable = e.IsWritable || vmaProtWritable;
        if (devicePrivate) return Pte.NonPresent(PteKind.DevicePrivate, target, writable, huge).Raw;
        ulong entry = Pte.Present(target, writable, dirty: e.IsDirty, huge: huge).Raw;
        return vmaNoAccess ? (entry | Pte.ProtNoneBit) & ~Pte.WriteBit : entry;
    }

    /// <summary>A VMA with no access at all (PROT_NONE): its restored entries are PROT_NONE entries.</summary>
    internal static bool IsNoAccess(Vma vma) => (vma.Flags & (VmFlags.Read | VmFlags.Write | VmFlags.Exec)) == 0;

    /// <summary>
    /// remove_migration_ptes: every migration entry for [srcPfn, +pages) becomes a mapping of the
    /// corresponding page at <paramref name="newPfn"/> (the source again when restoring): a
    /// device-private entry for private memory, a present entry otherwise, with the migration
    /// entry's write permission and dirty bit (a clean page comes back clean: pte_mkdirty only
    /// when is_migration_entry_dirty). Raises no notifier event (nothing was mirrored meanwhile).
    /// </summary>
    internal static void Remove(Machine machine, ulong srcPfn, int pages, ulong newPfn)
        => Remove(machine, [new RmapQuery(srcPfn, pages)], [newPfn]);

    /// <summary>
    /// <see cref="Remove(Machine, ulong, int, ulong)"/> for many folios at once:
    /// query q's migration entries for [sources[q].FirstPfn, +Pages) go to newPfns[q]. Consecutive
    /// queries of one lineage share one locked rmap walk (anon_vma rwsem for read, or the caller's
    /// hold), and each mm's page-table lock is taken once per run of hits in that mm rather than
    /// once per page; every entry is still re-checked under the PTL.
    /// </summary>
    /// <remarks>
    /// No entry can be missed: a VMA is linked, split, merged or moved only under the rwsem for
    /// write, and fork links a child's VMA after its parent's before copying entries under the
    /// parent's PTL, so an entry copied during the walk is found in the child after the walk has
    /// passed the parent (the order dup_mmap relies on) — provided the walk looks at the child
    /// only after it restored the parent: the VMAs are visited one at a time, as rmap_walk_anon
    /// does, never probed all first.
    /// </remarks>
    internal static void Remove(Machine machine, ReadOnlySpan<RmapQuery> sources, ReadOnlySpan<ulong> newPfns)
    {
        var frames = machine.Frames;
        for (int q = 0; q < sources.Length;)
        {
            int owner = frames.Owner(sources[q].FirstPfn);
            int end = q + 1;
            while (end < sources.Length && frames.Owner(sources[end].FirstPfn) == owner) end++;
            var anon = Rmap.LockAnon(machine, sources[q].FirstPfn, out bool taken);
            if (anon != null)
            {
                try { RemoveLocked(machine, anon, sources, newPfns, q, end); }
                finally { anon.UnlockRead(taken); }
            }
            q = end;
        }
    }

    private static void RemoveLocked(Machine machine, AnonVma anon, ReadOnlySpan<RmapQuery> sources, ReadOnlySpan<ulong> newPfns, int from, int to)
    {
        var hits = Rmap.Scratch();
        var device = machine.DeviceMemory;
        var frames = machine.Frames;
        var vmas = anon.Vmas;
        // rmap_walk_anon: VMA by VMA in link order, each one's entries looked up and restored
        // before the next is looked at, so a fork copying the parent's entry after the walk had
        // looked at the child is still caught (Rmap.CollectVma).
        for (int v = 0; v < vmas.Count; v++)
        {
            hits.Clear();
            Rmap.CollectVma(frames, anon, vmas[v], sources, from, to, PteKindSet.Of(PteKind.Migration), hits);
            if (hits.Count == 0) continue;
            var mm = hits[0].Mm;
            long anonPages = 0, filePages = 0;   // rss deltas, applied once per VMA
            Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.RemoveMigrationPtesVisit, mm, hits[0].Address);
            mm.PageTableLock.Lock();
            try
            {
                for (int h = 0; h < hits.Count; h++)
                {
                    var hit = hits[h];
                    ulong srcPfn = sources[hit.Tag].FirstPfn;
                    ref ulong slot = ref mm.SlotFor(hit.Address, hit.Huge);
                    if (Unsafe.IsNullRef(ref slot)) continue;
                    var e = new Pte(slot);
                    if (e.Kind != PteKind.Migration || e.Pfn - srcPfn >= (ulong)sources[hit.Tag].Pages) continue;
                    ulong target = newPfns[hit.Tag] + (e.Pfn - srcPfn);
                    bool priv = device?.Classify(target) == DevicePageClass.Private;
                    // remove_migration_pte: mk_pte(new, vma->vm_page_prot), made writable when the
                    // migration entry was — so a shared writable mapping (shmem) gets a writable
                    // entry back and a private one only what was writable before.
                    ulong entry = RestoredEntry(e, target, priv, hit.Vma.PageProtWritable, IsNoAccess(hit.Vma), hit.Huge);
                    if (target != e.Pfn) DropExclusiveIfShared(frames, e.Pfn, target, hit.Huge ? Page.PmdPages : 1);
                    ulong head = frames.FolioHead(target);
                    if (hit.Huge) Interlocked.Increment(ref frames.EntireMapCount(head));
                    else Interlocked.Increment(ref frames.MapCount(target));
                    machine.GetPage(head);
                    if ((frames.Flags(head) & (PageFlags.Anon | PageFlags.Device)) != 0) anonPages += hit.Huge ? Page.PmdPages : 1;
                    else filePages += hit.Huge ? Page.PmdPages : 1;
                    Volatile.Write(ref slot, entry);
                }
            }
            finally
            {
                mm.PageTableLock.Unlock();
                mm.AddRss(anonPages, filePages);
            }
        }
    }

    /// <summary>
    /// remove_migration_pte's RMAP_EXCLUSIVE: the destination is mapped exclusive only if the
    /// migration entry still was. The kernel carries that in the entry (a fork turns a writable or
    /// readable-exclusive migration entry into a plain readable one in both mms); the simulator
    /// keeps it on the source page, whose PageAnonExclusive fork clears, while migrate_vma_pages
    /// (MigrationEngine.CommitPage) already copied it to the destination. A fork that ran between
    /// pages and finalize must therefore clear the destination's too, or the child's first write
    /// would reuse a page the parent still maps (found by exploration: fork-migration, PCT seed 45).
    /// </summary>
    private static void DropExclusiveIfShared(PageFrames frames, ulong source, ulong target, int pages)
    {
        ulong sourceHead = frames.FolioHead(source);
        if ((frames.Flags(sourceHead) & PageFlags.Anon) == 0) return;
        // The same rule as CommitPage: a 2 MiB source folio tracks exclusivity on its head.
        ulong tracked = frames.Order(sourceHead) == Page.PmdOrder ? sourceHead : source;
        if ((frames.Flags(tracked) & PageFlags.AnonExclusive) != 0) return;
        for (int k = 0; k < pages; k++)
            if ((frames.Flags(target + (ulong)k) & PageFlags.AnonExclusive) != 0) frames.ClearFlags(target + (ulong)k, PageFlags.AnonExclusive);
    }
}
