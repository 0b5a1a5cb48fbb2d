using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Dsl;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Migration;

/// <summary>
/// Simulates <c>struct migrate_vma</c> and the three-step migration of a virtual range between
/// system and device memory (reference B.6): <see cref="Setup"/> collects and unmaps the source
/// pages, the driver allocates and copies into destinations, <see cref="Pages"/> commits,
/// the driver updates its device page table, <see cref="Finalize"/> installs the new pages.
/// </summary>
/// <remarks>
/// One object is reused for many migrations (nothing allocates per page). The caller holds the
/// mm's mmap lock across all three steps (MIG-R01). Misuse the kernel would BUG on throws
/// <see cref="KernelBugException"/>: <see cref="Pages"/>/<see cref="Finalize"/> without a
/// successful setup or twice, and disposing a set-up migration that was never finalized
/// (MIG-R02, unless an exception is unwinding: see <see cref="Dispose"/>); a destination
/// where the source had no MIGRATE, or one not locked (MIG-R04).
/// </remarks>
public sealed class MigrateVma : IDisposable
{
    private enum Stage { Idle, SetUp, Paged }

    private Stage _stage;
    private AddressSpace? _mm;
    private ulong[] _srcSeen = Array.Empty<ulong>(), _dstSeen = Array.Empty<ulong>();   // MIG-R05 snapshots
    private nint _exceptionAtSetup;   // an exception already being handled when setup ran (see Dispose)
    // Finalize's range fast path: one bit per entry collected from its only mapping (mapcount 1),
    // and the machine's rmap generation when collect started (see SoleMappingRange).
    private ulong[] _sole = Array.Empty<ulong>();
    private long _collectGeneration;
    private Vma? _collectVma;
    private ulong _collectStart;

    /// <summary>vma: the VMA containing [Start, End).</summary>
    public Vma? Vma { get; set; }

    /// <summary>start (page aligned down by <see cref="Setup"/>).</summary>
    public ulong Start { get; set; }

    /// <summary>end, exclusive (page aligned up by <see cref="Setup"/>).</summary>
    public ulong End { get; set; }

    /// <summary>src[]: at least (End-Start)/4096 entries; written by <see cref="Setup"/>; not to be changed by the caller afterwards (MIG-R05).</summary>
    public ulong[] Src { get; set; } = Array.Empty<ulong>();

    /// <summary>dst[]: filled by the driver between <see cref="Setup"/> and <see cref="Pages"/> only where Src has MIGRATE.</summary>
    public ulong[] Dst { get; set; } = Array.Empty<ulong>();

    /// <summary>cpages: entries still MIGRATE after setup (collected and unmapped).</summary>
    public long CPages { get; private set; }

    /// <summary>npages: entries written by setup.</summary>
    public long NPages { get; private set; }

    /// <summary>pgmap_owner: the owner cookie selecting device pages and carried by the MIGRATE events (MIG-R07).</summary>
    public object? PgmapOwner { get; set; }

    /// <summary>flags: which source pages to collect.</summary>
    public MigrateSelect Flags { get; set; }

    /// <summary>fault_page: the device page migrate_to_ram was called for (locked and referenced by the core, MIG-R08).</summary>
    [Hmm.Dsl.DevicePrivatePfn]
    public ulong? FaultPage { get; set; }

    /// <summary>
    /// migrate_vma_setup: EINVAL for no VMA, a hugetlb or VM_SPECIAL VMA, an empty range, a range
    /// not inside the VMA (crossing into another VMA or a hole), arrays too short, or a fault
    /// page that is not device-private. Otherwise collects inside one MIGRATE invalidation
    /// (owner = <see cref="PgmapOwner"/>), then unmaps other mappings and drops pinned or
    /// extra-referenced pages (their src word becomes 0), and returns 0 even if nothing moved.
    /// </summary>
    [MayBlock]
    [Migrates]
    [RequiresShared("args.Vma.Mm.MmapLock")]
    [AcquiresReference("migration", "args", When = AcquiredWhen.ReturnsOk)]
    public static Errno Setup(MigrateVma args) => args.SetupCore();

    /// <summary>migrate_vma_pages: commits each entry that has a destination.</summary>
    [MayBlock]
    [Migrates]
    [RequiresShared("args.Vma.Mm.MmapLock")]
    [CommitsDestinations]
    public static void Pages(MigrateVma args) => args.PagesCore();

    /// <summary>migrate_vma_finalize: installs the destinations (or restores the sources). Must follow every successful setup (MIG-R02).</summary>
    [MayBlock]
    [Migrates]
    [RequiresShared("args.Vma.Mm.MmapLock")]
    [ReleasesReference("migration", "args")]
    public static void Finalize(MigrateVma args) => args.FinalizeCore();

    /// <summary>Entries covered: (End - Start) / 4096 after setup.</summary>
    public int EntryCount => (int)NPages;

    private Errno SetupCore()
    {
        if (_stage != Stage.Idle)
            throw new KernelBugException("MIG-R02", "migrate_vma_setup on a migration that was not finalized");
        if (Notifiers.MmuNotifierSubscriptions.InCallback)
            throw new KernelBugException("MIG-R11", "migrate_vma_setup called from inside an mmu notifier callback");
        if ((Flags & (MigrateSelect.DevicePrivate | MigrateSelect.DeviceCoherent)) != 0 && PgmapOwner == null)
            throw new KernelBugException("MIG-R07", "device pages selected without a PgmapOwner: nothing of the driver's would ever be collected");
        var vma = Vma;
        if (vma == null) return Errno.EINVAL;
        var mm = vma.Mm;
        if (!mm.MmapLock.IsLocked) throw new KernelBugException("MIG-R01", "migrate_vma_setup requires the mm's mmap lock held across setup, pages and finalize");
        ulong start = Page.AlignDown(Start);
        if (End <= Start || End - Start > AddressSpace.TaskSize) return Errno.EINVAL;
        ulong end = (End + Page.OffsetMask) & ~Page.OffsetMask;
        long npages = (long)((end - start) >> Page.Shift);
        if (vma.IsHugeTlb || (vma.Flags & VmFlags.Special) != 0) return Errno.EINVAL;
        if (npages <= 0 || start < vma.Start || end <= vma.Start || end > vma.End) return Errno.EINVAL;
        if (mm.FindVma(start) != vma) return Errno.EINVAL;
        if (Src.Length < npages || Dst.Length < npages) return Errno.EINVAL;
        var machine = mm.Machine;
        if (FaultPage is { } fp)
        {
            if (machine.DeviceMemory?.Classify(fp) != DevicePageClass.Private) return Errno.EINVAL;
            if ((machine.Frames.Flags(fp) & PageFlags.Locked) == 0) return Errno.EINVAL;
        }
        Start = start;
        End = end;
        _mm = mm;
        var src = Src.AsSpan(0, (int)npages);
        src.Clear();
        Dst.AsSpan(0, (int)npages).Clear();
        CPages = 0;
        NPages = 0;
        int soleWords = (int)((npages + 63) >> 6);
        if (_sole.Length < soleWords) _sole = new ulong[Math.Max(soleWords, Page.PmdPages / 64)];
        _sole.AsSpan(0, soleWords).Clear();
        _collectGeneration = machine.RmapGeneration;
        _collectVma = vma;
        _collectStart = start;

        var hook = mm.InvalidateStart(NotifyEvent.Migrate, start, end, PgmapOwner);
        try
        {
            Collect(mm, vma, src);
            // migrate_vma_collect_pmd: "if (unmapped) flush_tlb_range()". Once it returns no CPU
            // still loads or stores through the old entries, so the pages' contents are stable
            // for the driver's copy. (Cheap when nothing was collected or no access is in flight.)
            mm.Tlb.Flush();
        }
        finally { mm.InvalidateEnd(hook, NotifyEvent.Migrate, start, end, PgmapOwner); }
        NPages = npages;

        // migrate_vma_unmap: other mappings become migration entries; pinned pages stay.
        long cpages = 0;
        for (int i = 0; i < src.Length; i++)
        {
            ulong word = src[i];
            if ((word & MigratePfn.Migrate) == 0) continue;
            if (MigratePfn.IsValid(word))
            {
                ulong pfn = word >> MigratePfn.Shift;
                int pages = (word & MigratePfn.Compound) != 0 ? Page.PmdPages : 1;
                // A page collected from its only mapping has no other to unmap (UnmapOthers would
                // find its mapcount 0 and return at once).
                if ((_sole[i >> 6] & (1UL << (i & 63))) == 0) MigrationEngine.UnmapOthers(machine, pfn, pages);
                if (!MigrationEngine.OnlyMigrationHoldsIt(machine, machine.Frames.FolioHead(pfn), FaultPage))
                {
                    MigrationEngine.Restore(machine, ref src[i], FaultPage);
                    continue;
                }
            }
            cpages++;
        }
        CPages = cpages;
        Remember(ref _srcSeen, src);
        _exceptionAtSetup = ExceptionInFlight();
        _stage = Stage.SetUp;
        Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.MigrateVmaSetUp, this, start);
        return Errno.Ok;
    }

    private void Collect(AddressSpace mm, Vma vma, Span<ulong> src)
    {
        var machine = mm.Machine;
        bool anon = vma.IsPrivateAnon;
        for (int i = 0; i < src.Length;)
        {
            ulong va = Start + ((ulong)i << Page.Shift);
            bool pmdAligned = (va & (Page.PmdSize - 1)) == 0 && i + Page.PmdPages <= src.Length;
            bool compound = pmdAligned && (Flags & MigrateSelect.Compound) != 0;
            ulong[]? pmdTable = mm.Tables.PmdTable(va, allocate: false);
            ref ulong pmd = ref pmdTable == null ? ref Unsafe.NullRef<ulong>() : ref pmdTable[PageTables.PmdIndex(va)];
            if (Unsafe.IsNullRef(ref pmd) || pmd == 0)
            {
                // A hole: anonymous memory is populated by the migration (no SELECT flag needed).
                if (anon && compound) { src[i] = MigratePfn.Migrate | MigratePfn.Compound; i += Page.PmdPages; continue; }
                if (anon) src[i] = MigratePfn.Migrate;
                i++;
                continue;
            }
            if (!PageTables.IsTable(pmd))
            {
                var leaf = new Pte(pmd);
                if (leaf.Kind == PteKind.Present && mm.IsZeroPfn(leaf.Pfn))
                {
                    // The huge zero page: migrate_vma_collect_huge_pmd collects it as a hole (one
                    // COMPOUND entry when the whole PMD is asked for with SELECT_COMPOUND, else base
                    // entries) and leaves the PMD mapped until migrate_vma_pages inserts the
                    // destinations over it; without SELECT_SYSTEM the whole PMD is skipped.
                    int run = Math.Min(Page.PmdPages - PageTables.PteIndex(va), src.Length - i);
                    if ((Flags & MigrateSelect.System) == 0 || !anon) { i += run; continue; }
                    if (compound) { src[i] = MigratePfn.Migrate | MigratePfn.Compound; i += Page.PmdPages; continue; }
                    for (int k = 0; k < run; k++) src[i + k] = MigratePfn.Migrate;
                    i += run;
                    continue;
                }
                if (compound && leaf.Kind is PteKind.Present or PteKind.DevicePrivate)
                {
                    ulong word = CollectEntry(machine, mm, ref pmd, leaf, huge: true, out bool selected);
                    if (selected)
                    {
                        src[i] = word;
                        i += Page.PmdPages;
                        continue;
                    }
                }
                if (leaf.Kind == PteKind.Migration) { i += Page.PmdPages - (int)((va >> Page.Shift) & (Page.PmdPages - 1)); continue; }
                mm.SplitHugePmd(vma, va & ~(Page.PmdSize - 1), notify: true);
            }
            // One PTE table at a time, its page-table lock held across the run of entries it
            // collects (as migrate_vma_collect_pmd holds the PTE lock), dropped around splits.
            ulong[] ptes = mm.Tables.TableOf(pmd);
            int chunkEnd = Math.Min(src.Length, i + Page.PmdPages - PageTables.PteIndex(va));
            bool ptl = false;
            try
            {
                for (; i < chunkEnd; i++)
                {
                    ref ulong slot = ref ptes[PageTables.PteIndex(Start + ((ulong)i << Page.Shift))];
                    // Entries are read and their pages looked at under the PTL (re-taken after a
                    // split): only a mapping seen under it keeps its page — and a device page's
                    // memory — alive (issue 8, PAGE-R02).
                    if (!ptl) { mm.PageTableLock.Lock(); ptl = true; }
                    var pte = new Pte(Volatile.Read(ref slot));
                    switch (pte.Kind)
                    {
                        case PteKind.None:
                        case PteKind.Marker:
                            if (anon) src[i] = MigratePfn.Migrate;
                            break;
                        case PteKind.Present when mm.IsZeroPfn(pte.Pfn):
                            if ((Flags & MigrateSelect.System) != 0) src[i] = MigratePfn.Migrate;
                            break;
                        case PteKind.Present:
                        case PteKind.DevicePrivate:
                            if (!Selects(machine, pte)) break;
                            if (!IsBasePage(machine, pte.Pfn))
                            {
                                if (ptl) { mm.PageTableLock.Unlock(); ptl = false; }
                                if (!SplitLargeFolio(machine, pte.Pfn)) break;
                                // The split put the mapping back through a migration entry:
                                // collect what the slot holds now (migrate_vma_collect_pmd walks
                                // the PMD again after split_folio).
                                mm.PageTableLock.Lock();
                                ptl = true;
                                pte = new Pte(Volatile.Read(ref slot));
                                if (pte.Kind is not (PteKind.Present or PteKind.DevicePrivate) || !Selects(machine, pte) || !IsBasePage(machine, pte.Pfn)) break;
                            }
                            src[i] = CollectBasePage(machine, mm, ref slot, pte, ref ptl, out bool sole);
                            if (sole) _sole[i >> 6] |= 1UL << (i & 63);
                            break;
                    }
                }
            }
            finally
            {
                if (ptl) mm.PageTableLock.Unlock();
            }
        }
    }

    /// <summary>
    /// Collects one base page whose PTE table lock the caller may already hold
    /// (<paramref name="ptl"/>): try-lock the page, take the migration's reference, and turn the
    /// entry into a migration entry if it is still the one read. <paramref name="sole"/>: the entry
    /// was the page's only mapping (mapcount 1 under the PTL), so finalize may put it back without
    /// an rmap walk.
    /// </summary>
    private ulong CollectBasePage(Machine machine, AddressSpace mm, ref ulong slot, Pte entry, ref bool ptl, out bool sole)
    {
        sole = false;
        ulong pfn = entry.Pfn;
        bool isFault = FaultPage == pfn;
        if (!isFault && !machine.TryLockPage(pfn)) return 0;   // best effort: a locked page is skipped
        machine.GetPage(pfn);
        if (!ptl) { mm.PageTableLock.Lock(); ptl = true; }
        if (Volatile.Read(ref slot) == entry.Raw)
        {
            // Read before the conversion drops it: only a count of 1 (this entry) makes the entry
            // the page's only mapping, and so the only migration entry finalize must find.
            bool only = Volatile.Read(ref machine.Frames.MapCount(pfn)) == 1;
            if (MigrationEngine.ToMigrationEntry(machine, mm, ref slot, huge: false))
            {
                sole = only;
                return MigratePfn.FromPfn(pfn) | MigratePfn.Migrate | (entry.IsWritable ? MigratePfn.Write : 0);
            }
        }
        if (!isFault) machine.UnlockPage(pfn);
        machine.PutPage(pfn);
        return 0;
    }

    /// <summary>Whether the SELECT flags and owner pick the page an entry maps (anonymous pages only).</summary>
    private bool Selects(Machine machine, Pte entry)
    {
        ulong pfn = entry.Pfn;
        var cls = machine.DeviceMemory?.Classify(pfn) ?? DevicePageClass.None;
        if (entry.Kind == PteKind.DevicePrivate)
            return cls == DevicePageClass.Private && (Flags & MigrateSelect.DevicePrivate) != 0 && ReferenceEquals(machine.DeviceMemory!.PgmapOwner(pfn), PgmapOwner);
        if (entry.Kind != PteKind.Present || entry.IsProtNone) return false;
        if ((machine.Frames.Flags(machine.Frames.FolioHead(pfn)) & PageFlags.Anon) == 0) return false;   // no anonymous mapping: not migratable
        return cls switch
        {
            DevicePageClass.None => (Flags & MigrateSelect.System) != 0,
            DevicePageClass.Coherent => (Flags & MigrateSelect.DeviceCoherent) != 0 && ReferenceEquals(machine.DeviceMemory!.PgmapOwner(pfn), PgmapOwner),
            _ => false,
        };
    }

    private static bool IsBasePage(Machine machine, ulong pfn)
        => machine.Frames.FolioHead(pfn) == pfn && machine.Frames.Order(pfn) == 0;

    /// <summary>
    /// A PTE mapping one subpage of a 2 MiB folio: the folio is split first (migrate_vma_collect
    /// splits large folios it cannot move whole); a pinned or busy folio stays (src 0).
    /// </summary>
    private bool SplitLargeFolio(Machine machine, ulong pfn)
    {
        ulong head = machine.Frames.FolioHead(pfn);
        bool isFault = FaultPage == head;
        if (!isFault)
        {
            // folio_try_get, then folio_trylock: the PTL was dropped for the split, so the folio
            // may have been freed (or frozen by another split) since the entry was read; the
            // reference also keeps the head, which may be unmapped, from being freed under the split.
            if (!machine.TryGetPage(head)) return false;
            if (machine.Frames.FolioHead(pfn) != head || !machine.TryLockPage(head)) { machine.PutPage(head); return false; }
        }
        bool split;
        try { split = machine.TrySplitFolio(head, 1); }
        finally
        {
            if (!isFault)
            {
                machine.UnlockPage(head);
                machine.PutPage(head);
            }
        }
        return split;
    }

    /// <summary>
    /// migrate_vma_collect_huge_pmd for a PMD leaf: under the PTL, with the entry unchanged, the
    /// page is looked at (<see cref="Selects"/>; <paramref name="selected"/> false when it is not
    /// one to migrate), try-locked, referenced and unmapped. Returns the src word, or 0 when a
    /// selected page could not be taken (locked by someone else), or when the entry changed
    /// meanwhile (then <paramref name="selected"/> is true too: the run is skipped).
    /// </summary>
    private ulong CollectEntry(Machine machine, AddressSpace mm, ref ulong slot, Pte entry, bool huge, out bool selected)
    {
        ulong head = entry.Pfn;
        bool isFault = FaultPage == head;
        bool write = entry.IsWritable;
        selected = false;
        mm.PageTableLock.Lock();
        try
        {
            if (Volatile.Read(ref slot) != entry.Raw) { selected = true; return 0; }   // changed meanwhile: skipped, as a busy page
            if (!Selects(machine, entry)) return 0;
            selected = true;
            if (!isFault && !machine.TryLockPage(head)) return 0;   // best effort: a locked page is skipped
            machine.GetPage(head);   // the entry, unchanged under the PTL, maps it: not free, not frozen
            // Cannot fail: the slot holds the present or device-private entry just checked.
            MigrationEngine.ToMigrationEntry(machine, mm, ref slot, huge);
        }
        finally { mm.PageTableLock.Unlock(); }
        return MigratePfn.FromPfn(head) | MigratePfn.Migrate | (write ? MigratePfn.Write : 0) | (huge ? MigratePfn.Compound : 0);
    }

    private void PagesCore()
    {
        if (_stage != Stage.SetUp) throw new KernelBugException("MIG-R02", _stage == Stage.Paged ? "migrate_vma_pages called twice" : "migrate_vma_pages without a successful migrate_vma_setup");
        var mm = _mm!;
        var vma = Vma!;
        var machine = mm.Machine;
        var src = Src.AsSpan(0, (int)NPages);
        var dst = Dst.AsSpan(0, (int)NPages);
        CheckUnchanged(_srcSeen, src, "src[] changed after migrate_vma_setup");
        CheckDestinations(machine, src, dst);
        IMmuNotifierHook? hook = null;
        ulong notifyStart = 0;
        bool notifying = false;
        for (int i = 0; i < src.Length; i++)
        {
            ulong word = src[i], d = dst[i];
            if ((word & MigratePfn.Migrate) == 0) continue;
            if (!MigratePfn.IsValid(d)) { src[i] = word & ~MigratePfn.Migrate; continue; }
            ulong addr = Start + ((ulong)i << Page.Shift);
            if (!MigratePfn.IsValid(word))
            {
                // A hole or the zero page: insert the new page (migrate_vma_insert_page).
                if (!notifying)
                {
                    notifyStart = addr;
                    hook = mm.InvalidateStart(NotifyEvent.Migrate, addr, End, PgmapOwner);
                    notifying = true;
                }
                bool srcCompound = (word & MigratePfn.Compound) != 0, dstCompound = (d & MigratePfn.Compound) != 0;
                if (srcCompound && !dstCompound)
                {
                    // Fallback of a 2 MiB hole to base pages: each subpage entry carries its own destination.
                    src[i] = word & ~MigratePfn.Compound;
                    for (int k = 1; k < Page.PmdPages; k++) src[i + k] = MigratePfn.Migrate | MigrationEngine.SplitSubpage;
                    word = src[i];
                }
                else if (!srcCompound && dstCompound) { src[i] = word & ~MigratePfn.Migrate; continue; }
                if (!InsertPage(mm, vma, addr, d >> MigratePfn.Shift, dstCompound && srcCompound))
                    src[i] = word & ~MigratePfn.Migrate;
                if (dstCompound && srcCompound) i += Page.PmdPages - 1;
                continue;
            }
            if (!MigrationEngine.CommitPage(machine, src, i, d, FaultPage, canSplit: true))
                src[i] = src[i] & ~MigratePfn.Migrate;
        }
        if (notifying) mm.InvalidateEnd(hook, NotifyEvent.Migrate, notifyStart, End, PgmapOwner);
        Remember(ref _srcSeen, src);
        Remember(ref _dstSeen, dst);
        _stage = Stage.Paged;
    }

    private static void CheckDestinations(Machine machine, ReadOnlySpan<ulong> src, ReadOnlySpan<ulong> dst)
    {
        int compoundUntil = -1;
        for (int i = 0; i < src.Length; i++)
        {
            ulong word = src[i];
            if ((word & (MigratePfn.Compound | MigratePfn.Migrate)) == (MigratePfn.Compound | MigratePfn.Migrate)) compoundUntil = i + Page.PmdPages;
            if (!MigratePfn.IsValid(dst[i])) continue;
            if ((word & MigratePfn.Migrate) == 0 && i >= compoundUntil)
                throw new KernelBugException("MIG-R04", $"dst[{i}] filled where src[{i}] has no MIGRATE");
            MigrationEngine.CheckDestination(machine, dst[i], i);
        }
    }

    /// <summary>
    /// migrate_vma_insert_page: maps a destination at a hole or zero-page entry of an anonymous
    /// VMA — a device-private entry (writable iff VM_WRITE) for private memory, a present one
    /// otherwise. A 2 MiB destination replaces an empty or huge-zero PMD whole; a base page over
    /// a huge-zero PMD splits it first (into zero-page PTEs). Fails when the entry was populated
    /// meanwhile ("lost the race").
    /// </summary>
    private static bool InsertPage(AddressSpace mm, Vma vma, ulong addr, ulong dpfn, bool huge)
    {
        if (!vma.IsPrivateAnon) return false;
        if (!huge)
        {
            ulong[]? pmds = mm.Tables.PmdTable(addr, allocate: false);
            ulong cur = pmds == null ? 0 : Volatile.Read(ref pmds[PageTables.PmdIndex(addr)]);
            if (cur != 0 && !PageTables.IsTable(cur) && new Pte(cur) is { Kind: PteKind.Present } z && mm.IsZeroPfn(z.Pfn))
                mm.SplitHugePmd(vma, addr & ~(Page.PmdSize - 1), notify: true);
        }
        var machine = mm.Machine;
        var anon = mm.AnonFor(vma);
        bool writable = (vma.Flags & VmFlags.Write) != 0;
        bool priv = machine.DeviceMemory?.Classify(dpfn) == DevicePageClass.Private;
        ulong entry = priv
            ? Pte.NonPresent(PteKind.DevicePrivate, dpfn, writable, huge).Raw
            : Pte.Present(dpfn, writable, dirty: writable, huge: huge).Raw;
        if (!priv && (vma.Flags & (VmFlags.Read | VmFlags.Write | VmFlags.Exec)) == 0) entry |= Pte.ProtNoneBit;   // vma->vm_page_prot
        var f = machine.Frames;
        int pages = huge ? Page.PmdPages : 1;
        ulong[]? pmdTable = mm.Tables.PmdTable(addr, allocate: false);
        if (pmdTable == null)
        {
            mm.PageTableLock.Lock();
            try { pmdTable = mm.Tables.PmdTable(addr, allocate: true)!; }
            finally { mm.PageTableLock.Unlock(); }
        }
        mm.PageTableLock.Lock();
        try
        {
            ref ulong pmd = ref pmdTable[PageTables.PmdIndex(addr)];
            ref ulong slot = ref pmd;
            if (huge)
            {
                if (pmd != 0 && !(new Pte(pmd).Kind == PteKind.Present && mm.IsZeroPfn(new Pte(pmd).Pfn) && !PageTables.IsTable(pmd))) return false;
            }
            else
            {
                if (pmd != 0 && !PageTables.IsTable(pmd)) return false;
                slot = ref mm.Tables.EnsurePteTable(ref pmd)[PageTables.PteIndex(addr)];
                var cur = new Pte(slot);
                if (!(cur.IsNone || (cur.Kind == PteKind.Present && mm.IsZeroPfn(cur.Pfn)))) return false;
            }
            for (int k = 0; k < pages; k++)
            {
                ulong d = dpfn + (ulong)k;
                f.Flags(d) |= PageFlags.Anon | PageFlags.AnonExclusive | PageFlags.Dirty;
                f.Owner(d) = anon.Id;
                f.Index(d) = vma.LinearIndex(addr) + (ulong)k;
            }
            if (huge) f.EntireMapCount(dpfn)++;
            else f.MapCount(dpfn)++;
            machine.GetPage(dpfn);
            mm.AccountRss(dpfn, pages);
            Volatile.Write(ref slot, entry);
            return true;
        }
        finally { mm.PageTableLock.Unlock(); }
    }

    private void FinalizeCore()
    {
        if (_stage == Stage.Idle) throw new KernelBugException("MIG-R02", "migrate_vma_finalize without a successful migrate_vma_setup (or called twice)");
        var machine = _mm!.Machine;
        var src = Src.AsSpan(0, (int)NPages);
        var dst = Dst.AsSpan(0, (int)NPages);
        var stage = _stage;
        _stage = Stage.Idle;
        bool srcChanged = !src.SequenceEqual(_srcSeen.AsSpan(0, src.Length));
        bool dstChanged = stage == Stage.Paged && !dst.SequenceEqual(_dstSeen.AsSpan(0, dst.Length));
        if (srcChanged || dstChanged)
        {
            // Finalize what the core committed, not what the caller scribbled, then report.
            _srcSeen.AsSpan(0, src.Length).CopyTo(src);
            if (stage == Stage.Paged) _dstSeen.AsSpan(0, dst.Length).CopyTo(dst);
            else for (int i = 0; i < src.Length; i++) src[i] &= ~MigratePfn.Migrate;
            MigrationEngine.FinalizeEntries(machine, src, dst, FaultPage, SoleMappings(src.Length));
            throw new KernelBugException("MIG-R05", srcChanged ? "src[] changed after migrate_vma_setup" : "dst[] changed after migrate_vma_pages");
        }
        MigrationEngine.FinalizeEntries(machine, src, dst, FaultPage, SoleMappings(src.Length));
    }

    /// <summary>The collect step's record for finalize's range fast path.</summary>
    private SoleMappingRange SoleMappings(int entries)
        => new(_mm!, _collectVma!, _collectStart, _sole.AsSpan(0, (entries + 63) >> 6), _collectGeneration);

    private static void Remember(ref ulong[] seen, ReadOnlySpan<ulong> words)
    {
        if (seen.Length < words.Length) seen = new ulong[Math.Max(words.Length, Page.PmdPages)];
        words.CopyTo(seen);
    }

    /// <summary>MIG-R05: the caller must not modify src[] after setup (nor dst[] after pages).</summary>
    private void CheckUnchanged(ulong[] seen, ReadOnlySpan<ulong> words, string what)
    {
        if (words.SequenceEqual(seen.AsSpan(0, words.Length))) return;
        // Put the core's view back and finalize from it, so the machine stays consistent.
        seen.AsSpan(0, words.Length).CopyTo(Src);
        FinalizeCore();
        throw new KernelBugException("MIG-R05", what);
    }

    /// <summary>
    /// Finalizes a migration that was set up but never finalized, on the caller's behalf —
    /// restoring every source after a bare setup, completing the commit after
    /// <see cref="Pages"/> — so the machine is left consistent (no migration entry or locked page
    /// stays behind), then decides whether that was a bug:
    /// <list type="bullet">
    /// <item>No exception is unwinding through the caller: the driver simply forgot
    /// migrate_vma_finalize, and Dispose throws MIG-R02.</item>
    /// <item>An exception thrown after setup is unwinding (Dispose runs from the <c>using</c>'s
    /// finally): Dispose returns quietly and that exception surfaces unchanged. The kernel has no
    /// exceptions, so this path has no Linux analogue; a simulator exception (a kernel-bug report
    /// from a deeper layer, an assertion, a driver bug) is the real error, and a MIG-R02 thrown
    /// from the finally would replace it (issue 8, failure 5). A MIG-R05 found while finalizing is
    /// not reported either, for the same reason.</item>
    /// </list>
    /// "Unwinding" is the runtime's current exception record
    /// (<see cref="Marshal.GetExceptionPointers"/>) being set and different from the one set when
    /// setup ran, so a migration set up and abandoned inside one catch block is still MIG-R02.
    /// </summary>
    public void Dispose()
    {
        if (_stage == Stage.Idle) return;
        var stage = _stage;
        nint current = ExceptionInFlight();
        bool unwinding = current != 0 && current != _exceptionAtSetup;
        if (stage == Stage.SetUp)
        {
            // Withdraw every entry from the core's own record of what setup collected: a src[]
            // the caller scribbled on (MIG-R05) would leave its pages' migration entries behind.
            var src = Src.AsSpan(0, (int)NPages);
            _srcSeen.AsSpan(0, src.Length).CopyTo(src);
            for (int i = 0; i < src.Length; i++) src[i] &= ~MigratePfn.Migrate;
            Remember(ref _srcSeen, src);   // the core itself withdrew every entry
        }
        try { FinalizeCore(); }
        catch (KernelBugException) when (unwinding) { return; }   // finalized anyway; the first error wins
        if (unwinding) return;
        throw new KernelBugException("MIG-R02", $"migration disposed after {(stage == Stage.SetUp ? "setup" : "pages")} without migrate_vma_finalize");
    }

    /// <summary>The runtime's record of the exception being dispatched on this thread, or 0 (also where the runtime does not provide it).</summary>
    private static nint ExceptionInFlight()
    {
        try { return Marshal.GetExceptionPointers(); }
        catch (PlatformNotSupportedException) { return 0; }
    }
}
