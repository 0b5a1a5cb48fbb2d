using System.Runtime.CompilerServices;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Migration;

/// <summary>
/// The steps migrate_vma and migrate_device share (mm/migrate_device.c): turning mappings into
/// migration entries (try_to_migrate), the extra-reference check, putting entries back
/// (remove_migration_ptes) and committing a destination (migrate_vma_pages / finalize).
/// </summary>
internal static class MigrationEngine
{
    private const PteKind Present = PteKind.Present;

    /// <summary>Flag kept in a src word (bit 5, unused by the kernel) marking a subpage entry the simulator created when it split a compound source.</summary>
    internal const ulong SplitSubpage = 1UL << 5;

    /// <summary>
    /// try_to_migrate: every remaining mapping of [pfn, +pages) in any address space becomes a
    /// migration entry, each inside a CLEAR invalidation of its own mm (reference D).
    /// </summary>
    public static void UnmapOthers(Machine machine, ulong pfn, int pages)
    {
        // migrate_device_unmap: "if (folio_mapped(folio)) try_to_migrate(folio, 0)". Every entry
        // the walk converts (present, device-private, device-exclusive) is counted in a mapcount,
        // so an unmapped folio has nothing to find. A mapping that appears after this check holds
        // a reference, which the caller's OnlyMigrationHoldsIt check then sees.
        if (!IsMapped(machine, pfn, pages)) return;
        // rmap_walk_anon: the lineage's rwsem for read across the walk and the conversions, and
        // per hit only that mm's page-table lock — no mmap lock, so an mmap writer elsewhere (an
        // mprotect holding it, a fork or munmap waiting for it) neither blocks nor is blocked.
        var anon = Rmap.LockAnon(machine, pfn, out bool taken);
        if (anon == null) return;
        try
        {
            var hits = Rmap.Scratch();
            var vmas = anon.Vmas;
            // VMA by VMA, each one's hits converted before the next is looked at (Rmap.CollectVma):
            // a fork copying the parent's mapping after the walk looked at the child is caught.
            for (int v = 0; v < vmas.Count; v++)
            {
                hits.Clear();
                Rmap.CollectVma(machine, anon, vmas[v], pfn, pages, PteKindSet.Of(Present, PteKind.DevicePrivate, PteKind.DeviceExclusive), hits);
                for (int h = 0; h < hits.Count; h++)
                {
                    var hit = hits[h];
                    var mm = hit.Mm;
                    Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.TryToMigrateHit, mm, hit.Address);
                    ulong size = hit.Huge ? Page.PmdSize : Page.Size;
                    var hook = mm.InvalidateStart(NotifyEvent.Clear, hit.Address, hit.Address + size);
                    mm.PageTableLock.Lock();
                    try
                    {
                        // page_vma_mapped_walk re-validates under the PTL that the entry still maps
                        // this folio: between the rmap probe and here a COW fault, a zap and refault or
                        // a migration may have put another page in the slot, and converting that one
                        // would leave a migration entry nobody removes (issue 8, failure 3).
                        ref ulong slot = ref mm.SlotFor(hit.Address, hit.Huge);
                        if (!Unsafe.IsNullRef(ref slot) && MapsOneOf(new Pte(Volatile.Read(ref slot)), pfn, pages, hit.Huge))
                            ToMigrationEntry(machine, mm, ref slot, hit.Huge);
                    }
                    finally { mm.PageTableLock.Unlock(); }
                    mm.Tlb.Flush();   // try_to_migrate_one: ptep_clear_flush
                    mm.InvalidateEnd(hook, NotifyEvent.Clear, hit.Address, hit.Address + size);
                }
            }
        }
        finally { anon.UnlockRead(taken); }
    }

    /// <summary>Whether <paramref name="e"/> is a mapping (present, device-private, device-exclusive) of a page in [pfn, +pages), at the walk's level.</summary>
    private static bool MapsOneOf(Pte e, ulong pfn, int pages, bool huge)
        => e.Kind is Present or PteKind.DevicePrivate or PteKind.DeviceExclusive && e.Pfn - pfn < (ulong)pages && e.IsHuge == huge;

    /// <summary>folio_mapped for the pages an rmap query over [pfn, +pages) can find (PMD mappings only for a whole 2 MiB folio).</summary>
    private static bool IsMapped(Machine machine, ulong pfn, int pages)
    {
        var f = machine.Frames;
        if (pages == Page.PmdPages && Volatile.Read(ref f.EntireMapCount(f.FolioHead(pfn))) != 0) return true;
        for (int k = 0; k < pages; k++)
            if (Volatile.Read(ref f.MapCount(pfn + (ulong)k)) != 0) return true;
        return false;
    }

    /// <summary>
    /// Replaces a mapping entry by a migration entry (writable if the mapping was, or if it was a
    /// device-exclusive entry), dropping the mapping's page reference. Caller holds the PTL.
    /// </summary>
    public static bool ToMigrationEntry(Machine machine, AddressSpace mm, ref ulong slot, bool huge)
        => MigrationEntries.ToMigrationEntry(machine, mm, ref slot, huge);

    /// <summary>remove_migration_ptes for [srcPfn, +pages) onto <paramref name="newPfn"/> (see <see cref="MigrationEntries"/>).</summary>
    public static void RemoveMigrationEntries(Machine machine, ulong srcPfn, int pages, ulong newPfn)
        => MigrationEntries.Remove(machine, srcPfn, pages, newPfn);

    /// <summary>remove_migration_ptes for many folios at once (see <see cref="MigrationEntries"/>).</summary>
    public static void RemoveMigrationEntries(Machine machine, ReadOnlySpan<RmapQuery> sources, ReadOnlySpan<ulong> newPfns)
        => MigrationEntries.Remove(machine, sources, newPfns);

    /// <summary>Splits every PMD migration entry of the 2 MiB folio at <paramref name="head"/> into 512 PTE migration entries.</summary>
    public static void SplitMigrationPmds(Machine machine, ulong head)
    {
        var anon = Rmap.LockAnon(machine, head, out bool taken);
        if (anon == null) return;
        try
        {
            var hits = Rmap.Scratch();
            var vmas = anon.Vmas;
            for (int v = 0; v < vmas.Count; v++)   // VMA by VMA, as rmap_walk_anon (Rmap.CollectVma)
            {
                hits.Clear();
                Rmap.CollectVma(machine, anon, vmas[v], head, Page.PmdPages, PteKindSet.Of(PteKind.Migration), hits);
                for (int h = 0; h < hits.Count; h++)
                {
                    var hit = hits[h];
                    if (hit.Huge) hit.Mm.SplitHugePmd(hit.Vma, hit.Address, notify: false);   // re-checks the leaf under the PTL
                }
            }
        }
        finally { anon.UnlockRead(taken); }
    }

    /// <summary>
    /// The unmap step's reference check (migrate_vma_check_page): after every mapping became a
    /// migration entry the folio must hold only the migration's reference (and the faulting
    /// path's one for <paramref name="faultPage"/>); anything more is a pin or another user.
    /// </summary>
    public static bool OnlyMigrationHoldsIt(Machine machine, ulong head, ulong? faultPage)
    {
        int expected = 1 + (faultPage == head ? 1 : 0);
        return Volatile.Read(ref machine.Frames.RefCount(head)) == expected && machine.Frames.PinCount(head) == 0;
    }

    /// <summary>Undoes a collected entry: mappings back, lock and reference released, src word zeroed.</summary>
    public static void Restore(Machine machine, ref ulong src, ulong? faultPage)
    {
        ulong pfn = src >> MigratePfn.Shift;
        int pages = (src & MigratePfn.Compound) != 0 ? Page.PmdPages : 1;
        RemoveMigrationEntries(machine, pfn, pages, pfn);
        ulong head = machine.Frames.FolioHead(pfn);
        if (head != faultPage) machine.UnlockPage(head);
        machine.PutPage(head);
        src = 0;
    }

    /// <summary>
    /// migrate_vma_pages / migrate_device_pages for entries with a source page: compound
    /// mismatches, the reference check, and the destination taking over the source's identity.
    /// Returns false when the entry must stay where it is.
    /// </summary>
    public static bool CommitPage(Machine machine, Span<ulong> src, int i, ulong dst, ulong? faultPage, bool canSplit)
    {
        ulong word = src[i];
        ulong spfn = word >> MigratePfn.Shift, dpfn = dst >> MigratePfn.Shift;
        bool srcCompound = (word & MigratePfn.Compound) != 0, dstCompound = (dst & MigratePfn.Compound) != 0;
        ulong head = machine.Frames.FolioHead(spfn);
        if (srcCompound && !dstCompound)
        {
            if (!canSplit || i + Page.PmdPages > src.Length) return false;
            // The destination is 512 base pages: migrate the folio page by page (the kernel splits
            // the source folio; the simulator keeps it whole and migrates each subpage's entries).
            SplitMigrationPmds(machine, head);
            src[i] = word & ~MigratePfn.Compound;
            for (int k = 1; k < Page.PmdPages; k++)
                src[i + k] = MigratePfn.FromPfn(spfn + (ulong)k) | MigratePfn.Migrate | (word & MigratePfn.Write) | SplitSubpage;
            word = src[i];
        }
        else if (!srcCompound && dstCompound) return false;
        if (!OnlyMigrationHoldsIt(machine, head, faultPage)) return false;
        int pages = dstCompound ? Page.PmdPages : 1;
        var f = machine.Frames;
        // folio_migrate_flags: the destination inherits PageAnonExclusive. A 2 MiB source folio
        // tracks it on its head while PMD-mapped (fork clears only the head's), so its state
        // applies to every subpage; a base page carries its own.
        bool largeSource = f.Order(head) == Page.PmdOrder;
        bool headExclusive = (f.Flags(head) & PageFlags.AnonExclusive) != 0;
        for (int k = 0; k < pages; k++)
        {
            ulong s = spfn + (ulong)k, d = dpfn + (ulong)k;
            bool exclusive = largeSource ? headExclusive : (f.Flags(s) & PageFlags.AnonExclusive) != 0;
            f.Flags(d) = (f.Flags(d) & ~PageFlags.AnonExclusive) | PageFlags.Anon | PageFlags.Dirty | (exclusive ? PageFlags.AnonExclusive : 0);
            f.Owner(d) = f.Owner(s);
            f.Index(d) = f.Index(s);
        }
        return true;
    }

    /// <summary>
    /// migrate_vma_finalize / migrate_device_finalize: puts each entry's mappings on the
    /// destination (or back on the source), then unlocks and releases source and destination.
    /// </summary>
    public static void FinalizeEntries(Machine machine, Span<ulong> src, ReadOnlySpan<ulong> dst, ulong? faultPage)
        => FinalizeEntries(machine, src, dst, faultPage, default);

    /// <summary>
    /// <see cref="FinalizeEntries(Machine, Span{ulong}, ReadOnlySpan{ulong}, ulong?)"/> for a
    /// migrate_vma range: the entries <paramref name="range"/> marks as collected from their only
    /// mapping are put back by walking the range's page tables
    /// (<see cref="MigrationEntries.RestoreSoleMappings"/>) when no fork or VMA split ran since
    /// collect; every other entry — and every entry otherwise — goes through the rmap walk.
    /// </summary>
    public static void FinalizeEntries(Machine machine, Span<ulong> src, ReadOnlySpan<ulong> dst, ulong? faultPage, SoleMappingRange range)
    {
        // The range fast path first: only while the rmap lineages are as collect saw them (no fork
        // copied a migration entry, no split moved one to another VMA) and under the mmap lock.
        bool ranged = range.Mm is { } mm && range.Vma is { } vma && !range.Sole.IsEmpty && !t_generalPathOnly
                      && machine.RmapGeneration == range.Generation && mm.MmapLock.IsHeldByCurrentThread;
        if (ranged)
        {
            int restored = MigrationEntries.RestoreSoleMappings(machine, range.Mm!, range.Vma!, range.Start, src, dst, range.Sole);
            Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.MigrationRangeRestored, range.Mm, (ulong)restored);
        }
        // remove_migration_ptes for every other entry, in one batched walk; then unlock and
        // release. The sources stay locked until their mappings are back, as in the kernel.
        // The buffers are taken out of their thread-static slots while in use (re-entrancy).
        var queries = t_queries ?? new RmapQuery[Page.PmdPages];
        var targets = t_targets ?? new ulong[Page.PmdPages];
        t_queries = null;
        t_targets = null;
        if (queries.Length < src.Length) { queries = new RmapQuery[src.Length]; targets = new ulong[src.Length]; }
        int n = 0;
        // A fork during the fast path (impossible under the mmap lock, checked anyway) may have
        // copied entries it had not restored yet: then the rmap walk covers every entry.
        bool skipSole = ranged && machine.RmapGeneration == range.Generation;
        for (int i = 0; i < src.Length; i++)
        {
            ulong word = src[i];
            if (!MigratePfn.IsValid(word)) continue;
            if (skipSole && (range.Sole[i >> 6] & (1UL << (i & 63))) != 0) continue;
            ulong spfn = word >> MigratePfn.Shift;
            bool ok = (word & MigratePfn.Migrate) != 0 && MigratePfn.IsValid(dst[i]);
            queries[n] = new RmapQuery(spfn, (word & MigratePfn.Compound) != 0 ? Page.PmdPages : 1);
            targets[n++] = ok ? dst[i] >> MigratePfn.Shift : spfn;
        }
        try
        {
            if (n > 0 || !ranged) RemoveMigrationEntries(machine, queries.AsSpan(0, n), targets.AsSpan(0, n));
        }
        finally
        {
            t_queries = queries;
            t_targets = targets;
        }
        // The sources' references are dropped together at the end (release_pages): a migrated
        // range's old pages go back to the allocator in one batch rather than one lock hold each.
        var sources = t_sources ?? new ulong[Page.PmdPages];
        var freed = t_freed ?? new ulong[Page.PmdPages];
        t_sources = null;
        t_freed = null;
        if (sources.Length < src.Length) { sources = new ulong[src.Length]; freed = new ulong[src.Length]; }
        int s = 0;
        try
        {
            for (int i = 0; i < src.Length; i++)
            {
                ulong word = src[i], d = dst[i];
                bool dstValid = MigratePfn.IsValid(d);
                if (dstValid) ReleaseDestination(machine, d >> MigratePfn.Shift);
                if (!MigratePfn.IsValid(word)) continue;
                if ((word & SplitSubpage) != 0) continue;   // the folio's lock and reference sit on its head entry
                ulong head = machine.Frames.FolioHead(word >> MigratePfn.Shift);
                if (head != faultPage) machine.UnlockPage(head);
                sources[s++] = head;
            }
            machine.PutPages(sources.AsSpan(0, s), freed);
        }
        finally
        {
            t_sources = sources;
            t_freed = freed;
        }
    }

    [ThreadStatic] private static ulong[]? t_sources;
    [ThreadStatic] private static ulong[]? t_freed;

    /// <summary>Tests: makes this thread's finalizes take the rmap path for every entry (to compare the two paths).</summary>
    [ThreadStatic] internal static bool t_generalPathOnly;

    [ThreadStatic] private static RmapQuery[]? t_queries;
    [ThreadStatic] private static ulong[]? t_targets;

    private static void ReleaseDestination(Machine machine, ulong dpfn)
    {
        ulong head = machine.Frames.FolioHead(dpfn);
        if ((machine.Frames.Flags(head) & PageFlags.Locked) != 0) machine.UnlockPage(head);
        machine.PutPage(head);
    }

    /// <summary>MIG-R04: the destination must be a locked, referenced page.</summary>
    public static void CheckDestination(Machine machine, ulong dst, int i)
    {
        ulong dpfn = dst >> MigratePfn.Shift;
        if (!machine.Frames.IsOnline(dpfn)) throw new KernelBugException("MIG-R04", $"dst[{i}] pfn 0x{dpfn:x} has no struct page");
        ulong head = machine.Frames.FolioHead(dpfn);
        if ((machine.Frames.Flags(head) & PageFlags.Locked) == 0 || machine.Frames.RefCount(head) < 1)
            throw new KernelBugException("MIG-R04", $"dst[{i}] pfn 0x{dpfn:x} is not a locked, referenced page (lock it and take a reference, e.g. DevPagemap.InitPage)");
    }
}

/// <summary>
/// What migrate_vma_finalize's range fast path needs from the collect step: the range
/// (<see cref="Mm"/>, <see cref="Vma"/>, <see cref="Start"/>), one bit per src entry set when the
/// page was collected from its only mapping (mapcount 1), and the machine's rmap generation at
/// collect. The default value disables the fast path.
/// </summary>
internal readonly ref struct SoleMappingRange
{
    public SoleMappingRange(AddressSpace mm, Vma vma, ulong start, Span<ulong> sole, long generation)
    {
        Mm = mm;
        Vma = vma;
        Start = start;
        Sole = sole;
        Generation = generation;
    }

    public AddressSpace? Mm { get; }
    public Vma? Vma { get; }
    public ulong Start { get; }
    public Span<ulong> Sole { get; }
    public long Generation { get; }
}
