using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class AddressSpace
{
    /// <summary>Whether <paramref name="pfn"/> is one of the shared zero pages.</summary>
    internal bool IsZeroPfn(ulong pfn) => (Frames.Flags(pfn) & PageFlags.Zero) != 0;

    /// <summary>
    /// zap_pte_range / zap_pmd_range: clears every entry of [start, end) inside <paramref name="vma"/>,
    /// dropping the mappings' page references. The caller is inside an invalidation of the range
    /// and holds the mmap lock for write; PMD leaves straddling the range were split before.
    /// Each page table is cleared under the page-table lock, as zap_pte_range does: an rmap walk
    /// from another address space (which holds no mmap lock of this one) changes entries here
    /// under that lock only.
    /// </summary>
    internal void ZapRange(Vma vma, ulong start, ulong end)
    {
        for (ulong va = start; va < end;)
        {
            ulong pmdEnd = Math.Min((va + Page.PmdSize) & ~(Page.PmdSize - 1), end);
            ulong[]? pmdTable = Tables.PmdTable(va, allocate: false);
            if (pmdTable == null)
            {
                va = Math.Min((va + (1UL << Page.PudShift)) & ~((1UL << Page.PudShift) - 1), end);
                continue;
            }
            ref ulong pmd = ref pmdTable[PageTables.PmdIndex(va)];
            while (true)
            {
                // The PMD is read again under the lock: a THP split from another address space
                // (split_huge_page's unmap) may have turned the leaf into a table meanwhile.
                bool split = false;
                PageTableLock.Lock();
                try
                {
                    ulong cur = Volatile.Read(ref pmd);
                    if (cur != 0 && !PageTables.IsTable(cur))
                    {
                        if (pmdEnd - va == Page.PmdSize) ZapPmd(ref pmd);
                        else split = true;
                    }
                    else if (cur != 0)
                    {
                        ulong[] ptes = Tables.TableOf(cur);
                        for (ulong a = va; a < pmdEnd; a += Page.Size) ZapPte(ref ptes[PageTables.PteIndex(a)]);
                    }
                }
                finally { PageTableLock.Unlock(); }
                if (!split) break;
                SplitHugePmd(vma, va & ~(Page.PmdSize - 1), notify: true);
            }
            va = pmdEnd;
        }
    }

    /// <summary>Clears one PTE and drops what it held.</summary>
    internal void ZapPte(ref ulong slot)
    {
        ulong raw = slot;
        if (raw == 0) return;
        Volatile.Write(ref slot, 0);
        var pte = new Pte(raw);
        switch (pte.Kind)
        {
            case PteKind.Present:
                ulong pfn = pte.Pfn;
                if (IsZeroPfn(pfn) || (pte.IsSpecial && !Frames.IsOnline(pfn))) return;
                ulong head = Frames.FolioHead(pfn);
                if (pte.IsDirty) Frames.SetFlags(head, PageFlags.Dirty);
                Interlocked.Decrement(ref Frames.MapCount(pfn));
                AccountRss(head, -1);
                Machine.PutPage(head);
                return;
            case PteKind.DevicePrivate:
            case PteKind.DeviceExclusive:
                UnmapSoftwareEntry(pte);
                return;
            default:
                // Migration entries hold no reference (the migration does), nor do hwpoison or
                // marker entries: they just go away.
                return;
        }
    }

    /// <summary>Drops a device-private or device-exclusive entry's mapping (the page is freed by its last reference, never migrated back).</summary>
    private void UnmapSoftwareEntry(Pte pte)
    {
        ulong pfn = pte.Pfn;
        ulong head = Frames.FolioHead(pfn);
        Interlocked.Decrement(ref Frames.MapCount(pfn));
        AccountRss(head, -1);
        Machine.PutPage(head);
    }

    /// <summary>Clears a PMD leaf and drops the folio mapping it held.</summary>
    internal void ZapPmd(ref ulong slot)
    {
        ulong raw = slot;
        Volatile.Write(ref slot, 0);
        var pmd = new Pte(raw);
        if (pmd.Kind is not (PteKind.Present or PteKind.DevicePrivate or PteKind.DeviceExclusive)) return;
        ulong head = pmd.Pfn;
        if (IsZeroPfn(head)) return;
        Interlocked.Decrement(ref Frames.EntireMapCount(head));
        AccountRss(head, -Page.PmdPages);
        Machine.PutPage(head);
    }

    /// <summary>Applies batched rss deltas.</summary>
    internal void AddRss(long anonPages, long filePages)
    {
        if (anonPages != 0) Interlocked.Add(ref _rssAnon, anonPages);
        if (filePages != 0) Interlocked.Add(ref _rssFile, filePages);
    }

    internal void AccountRss(ulong head, long pages)
    {
        if ((Frames.Flags(head) & PageFlags.Anon) != 0 || (Frames.Flags(head) & PageFlags.Device) != 0)
            Interlocked.Add(ref _rssAnon, pages);
        else Interlocked.Add(ref _rssFile, pages);
    }

    /// <summary>Splits the PMD leaf covering <paramref name="address"/> in <paramref name="vma"/>, if any.</summary>
    internal void SplitHugePmdAt(Vma vma, ulong address)
    {
        ulong[]? pmdTable = Tables.PmdTable(address, allocate: false);
        if (pmdTable == null) return;
        ulong pmd = pmdTable[PageTables.PmdIndex(address)];
        if (pmd != 0 && !PageTables.IsTable(pmd)) SplitHugePmd(vma, address & ~(Page.PmdSize - 1), notify: true);
    }

    /// <summary>
    /// __split_huge_pmd: replaces the PMD leaf at <paramref name="pmdStart"/> by a table of 512 PTEs
    /// mapping the same pages with the same permissions, raising CLEAR over the PMD range
    /// (reference D, "THP split"). The folio stays one 2 MiB folio: each PTE takes its own
    /// reference and subpage mapping, as the kernel's split does; it is freed whole when the last
    /// subpage mapping goes.
    /// </summary>
    internal void SplitHugePmd(Vma vma, ulong pmdStart, bool notify)
    {
        if (vma.IsHugeTlb) throw new KernelBugException("MM-R05", $"hugetlb PMD at 0x{pmdStart:x} cannot be split");
        var hook = notify ? InvalidateStart(NotifyEvent.Clear, pmdStart, pmdStart + Page.PmdSize) : null;
        PageTableLock.Lock();
        try
        {
            ulong[] pmdTable = Tables.PmdTable(pmdStart, allocate: false)!;
            ref ulong slot = ref pmdTable[PageTables.PmdIndex(pmdStart)];
            ulong raw = slot;
            if (raw == 0 || PageTables.IsTable(raw)) return;
            var pmd = new Pte(raw);
            ulong[] ptes = Tables.NewTable(out ulong tableEntry);
            ulong head = pmd.Pfn;
            bool zero = pmd.Kind == PteKind.Present && IsZeroPfn(head);
            // Every subpage entry keeps the leaf's kind and bits (present, device-private,
            // device-exclusive or migration), less the PMD-leaf bit.
            ulong flags = raw & ~(Pte.PfnMask | Pte.HugeBit | Pte.SpecialBit);
            bool mapped = !zero && pmd.Kind is PteKind.Present or PteKind.DevicePrivate or PteKind.DeviceExclusive;
            // A PMD mapping tracks PageAnonExclusive on the head page only (fork clears just that one);
            // the split hands it to every subpage (folio_add_anon_rmap_ptes with RMAP_EXCLUSIVE or not).
            bool anon = mapped && (Frames.Flags(head) & PageFlags.Anon) != 0;
            bool exclusive = anon && (Frames.Flags(head) & PageFlags.AnonExclusive) != 0;
            for (int i = 0; i < Page.PmdPages; i++)
            {
                if (zero) ptes[i] = Pte.Present(Machine.ZeroPfn, writable: false, special: true).Raw | (raw & Pte.ProtNoneBit);
                else
                {
                    ptes[i] = ((head + (ulong)i) << Pte.PfnShift) | flags;
                    // Atomically, as the kernel's atomic_inc(&page->_mapcount) and
                    // SetPageAnonExclusive/ClearPageAnonExclusive (set_bit/clear_bit): the folio may
                    // be mapped in other mms, whose PTLs this one does not hold, and the head's flags
                    // hold the folio lock bit, which another thread may be taking or dropping — a
                    // plain read-modify-write here could lose that bit or a mapcount.
                    if (mapped) Interlocked.Increment(ref Frames.MapCount(head + (ulong)i));
                    if (anon)
                    {
                        if (exclusive) Frames.SetFlags(head + (ulong)i, PageFlags.AnonExclusive);
                        else Frames.ClearFlags(head + (ulong)i, PageFlags.AnonExclusive);
                    }
                }
            }
            if (mapped)
            {
                Interlocked.Decrement(ref Frames.EntireMapCount(head));
                Interlocked.Add(ref Frames.RefCount(head), Page.PmdPages - 1);
            }
            Volatile.Write(ref slot, tableEntry);
        }
        finally
        {
            PageTableLock.Unlock();
            if (notify) InvalidateEnd(hook, NotifyEvent.Clear, pmdStart, pmdStart + Page.PmdSize);
        }
    }

    /// <summary>Reads the entry mapping <paramref name="address"/>: a PTE, or a PMD leaf (then <paramref name="huge"/> is true).</summary>
    internal Pte ReadEntry(ulong address, out bool huge)
    {
        huge = false;
        ulong[]? pmdTable = Tables.PmdTable(address, allocate: false);
        if (pmdTable == null) return default;
        ulong pmd = Volatile.Read(ref pmdTable[PageTables.PmdIndex(address)]);
        if (pmd == 0) return default;
        if (!PageTables.IsTable(pmd)) { huge = true; return new Pte(pmd); }
        return new Pte(Volatile.Read(ref Tables.TableOf(pmd)[PageTables.PteIndex(address)]));
    }

    /// <summary>
    /// The slot of the PMD leaf (<paramref name="huge"/>) or PTE mapping <paramref name="address"/>,
    /// or a null ref when that level does not exist. Caller holds the mmap lock (and the PTL to write).
    /// </summary>
    internal ref ulong SlotFor(ulong address, bool huge)
    {
        ulong[]? pmdTable = Tables.PmdTable(address, allocate: false);
        if (pmdTable == null) return ref System.Runtime.CompilerServices.Unsafe.NullRef<ulong>();
        ref ulong pmd = ref pmdTable[PageTables.PmdIndex(address)];
        if (huge) return ref pmd;
        if (!PageTables.IsTable(pmd)) return ref System.Runtime.CompilerServices.Unsafe.NullRef<ulong>();
        return ref Tables.TableOf(pmd)[PageTables.PteIndex(address)];
    }

    /// <summary>The CPU page-table entry for <paramref name="address"/> (a PMD leaf is reported as is). For tests and tools.</summary>
    public Pte EntryAt(ulong address) => ReadEntry(address, out _);
}
