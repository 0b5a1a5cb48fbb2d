using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

internal static partial class MigrationEntries
{
    /// <summary>
    /// remove_migration_ptes for the pages of one migrate_vma range whose only mapping was the
    /// range's own entry when they were collected (<paramref name="sole"/>: one bit per entry, set
    /// by the collect step when the page's mapcount was 1). Such a page's only migration entry is
    /// the one collect wrote at its own address, so instead of an rmap walk per page the range's
    /// page tables are walked in address order, one page-table lock hold per PTE table, and each
    /// entry is put back as a mapping of its target (the destination when
    /// <paramref name="src"/>[i] is MIGRATE and <paramref name="dst"/>[i] valid, else the source)
    /// exactly as <see cref="RemoveLocked"/> would. An entry not found where collect left it (moved
    /// or zapped meanwhile) has its bit cleared: the caller sends it down the general rmap path.
    /// </summary>
    /// <remarks>
    /// The caller holds <paramref name="mm"/>'s mmap lock (MIG-R01) and has checked that no VMA was
    /// linked to or unlinked from an anon_vma lineage since collect
    /// (<see cref="Machine.RmapGeneration"/>): fork is the only way a migration entry is copied, and
    /// it links a VMA. Returns the entries restored. Allocation-free.
    /// </remarks>
    internal static int RestoreSoleMappings(Machine machine, AddressSpace mm, Vma vma, ulong start, ReadOnlySpan<ulong> src, ReadOnlySpan<ulong> dst, Span<ulong> sole)
    {
        if (mm.FindVma(start) != vma)
        {
            // The range is no longer this VMA's (cannot happen under the mmap lock): all general.
            sole.Clear();
            return 0;
        }
        var device = machine.DeviceMemory;
        var frames = machine.Frames;
        bool noAccess = IsNoAccess(vma);
        bool protWritable = vma.PageProtWritable;
        int restored = 0;
        long anonPages = 0, filePages = 0;
        // Device-memory class of the last target's 2 MiB block: a range's targets sit in a few chunks.
        ulong classBlock = ulong.MaxValue;
        bool classPrivate = false;
        for (int i = 0; i < src.Length;)
        {
            if (!IsSole(sole, i)) { i++; continue; }
            ulong va = start + ((ulong)i << Page.Shift);
            int tableEnd = Math.Min(src.Length, i + Page.PmdPages - PageTables.PteIndex(va));
            ulong[]? pmds = mm.Tables.PmdTable(va, allocate: false);
            mm.PageTableLock.Lock();
            try
            {
                ulong pmd = pmds == null ? 0 : Volatile.Read(ref pmds[PageTables.PmdIndex(va)]);
                if (!PageTables.IsTable(pmd))
                {
                    // No PTE table any more (the general path finds wherever the entries went).
                    for (; i < tableEnd; i++) ClearSole(sole, i);
                    continue;
                }
                ulong[] ptes = mm.Tables.TableOf(pmd);
                for (; i < tableEnd; i++)
                {
                    if (!IsSole(sole, i)) continue;
                    ulong word = src[i];
                    ulong spfn = word >> Migration.MigratePfn.Shift;
                    ref ulong slot = ref ptes[PageTables.PteIndex(start + ((ulong)i << Page.Shift))];
                    var e = new Pte(slot);
                    if (e.Kind != PteKind.Migration || e.Pfn != spfn || e.IsHuge)
                    {
                        ClearSole(sole, i);
                        continue;
                    }
                    bool committed = (word & Migration.MigratePfn.Migrate) != 0 && Migration.MigratePfn.IsValid(dst[i]);
                    ulong target = committed ? dst[i] >> Migration.MigratePfn.Shift : spfn;
                    if ((target >> Page.PmdOrder) != classBlock)
                    {
                        classBlock = target >> Page.PmdOrder;
                        classPrivate = device?.Classify(target) == DevicePageClass.Private;
                    }
                    // The entry the rmap walk builds for a PTE-level hit.
                    ulong entry = RestoredEntry(e, target, classPrivate, protWritable, noAccess, huge: false);
                    if (target != e.Pfn) DropExclusiveIfShared(frames, e.Pfn, target, 1);
                    ulong head = frames.FolioHead(target);
                    Interlocked.Increment(ref frames.MapCount(target));
                    machine.GetPage(head);
                    if ((frames.Flags(head) & (PageFlags.Anon | PageFlags.Device)) != 0) anonPages++;
                    else filePages++;
                    Volatile.Write(ref slot, entry);
                    restored++;
                }
            }
            finally { mm.PageTableLock.Unlock(); }
        }
        mm.AddRss(anonPages, filePages);
        return restored;
    }

    private static bool IsSole(ReadOnlySpan<ulong> sole, int i) => (sole[i >> 6] & (1UL << (i & 63))) != 0;

    private static void ClearSole(Span<ulong> sole, int i) => sole[i >> 6] &= ~(1UL << (i & 63));
}
