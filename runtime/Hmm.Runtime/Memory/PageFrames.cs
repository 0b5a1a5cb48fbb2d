using System.Runtime.CompilerServices;

namespace Hmm.Runtime.Memory;

/// <summary>
/// Simulates the <c>struct page</c> array (the memmap) as struct-of-arrays indexed by pfn,
/// organised in SPARSEMEM sections of 128 MiB (x86-64 SECTION_SIZE_BITS = 27) so device memory
/// can be hot-plugged at pfns far above RAM without a dense table in between.
/// </summary>
/// <remarks>
/// Fields: <see cref="RefCount"/> (<c>_refcount</c>), <see cref="MapCount"/> (<c>_mapcount</c> + 1:
/// PTE mappings of this page),
/// <see cref="PinCount"/> (FOLL_PIN pins, kept apart from refs instead of the kernel's
/// GUP_PIN_COUNTING_BIAS), <see cref="Flags"/>, <see cref="Order"/> (folio order on the head),
/// <see cref="Owner"/> (<c>page->mapping</c> as an id: anon_vma root, file or pgmap) and
/// <see cref="Index"/> (<c>page->index</c>: linear page offset for rmap). A large folio keeps all
/// its references on the head's <see cref="RefCount"/>; each subpage counts its own PTE
/// mappings in <see cref="MapCount"/>, and PMD mappings of the whole folio are counted in the
/// head's <see cref="EntireMapCount"/> (the kernel's <c>_entire_mapcount</c>). The section table is
/// replaced copy-on-write when sections are onlined, so lock-free readers stay valid.
/// </remarks>
public sealed class PageFrames
{
    /// <summary>log2 of pages per section (128 MiB / 4 KiB).</summary>
    public const int SectionShift = 15;
    /// <summary>Pages per section.</summary>
    public const ulong SectionPages = 1UL << SectionShift;
    private const ulong SectionMask = SectionPages - 1;

    private Section?[] _sections = Array.Empty<Section?>();
    private readonly Locking.SpinLock _hotplugLock = new("memory.hotplug");

    private sealed class Section
    {
        public readonly int[] RefCount = new int[SectionPages];
        public readonly int[] MapCount = new int[SectionPages];
        public readonly int[] PinCount = new int[SectionPages];
        public readonly int[] EntireMapCount = new int[SectionPages];
        public readonly PageFlags[] Flags = new PageFlags[SectionPages];
        public readonly byte[] Order = new byte[SectionPages];
        public readonly int[] Owner = new int[SectionPages];
        public readonly ulong[] Index = new ulong[SectionPages];

        /// <summary>Back to the state of a new section (every field zero), for reuse.</summary>
        public void Reset()
        {
            Array.Clear(RefCount);
            Array.Clear(MapCount);
            Array.Clear(PinCount);
            Array.Clear(EntireMapCount);
            Array.Clear(Flags);
            Array.Clear(Order);
            Array.Clear(Owner);
            Array.Clear(Index);
        }
    }

    // Sections taken offline, kept for the next online (the memmap of hot-removed device memory is
    // reused by the next hot-add, as the kernel's section memmap allocator may hand the same
    // memory back): a device that hot-adds and removes a 256 MiB chunk in a loop does not allocate
    // ~1 MiB of metadata arrays per section each time. Bounded; changed under _hotplugLock.
    private const int MaxSpareSections = 4;
    private readonly Section?[] _spare = new Section?[MaxSpareSections];
    private int _spareCount;

    /// <summary>sparse_add_section: brings metadata for [<paramref name="firstPfn"/>, +<paramref name="count"/>) online; both section aligned.</summary>
    public void Online(ulong firstPfn, ulong count) => Online(firstPfn, count, PageFlags.None, 0);

    /// <summary>
    /// <see cref="Online(ulong, ulong)"/> whose first <paramref name="flaggedPages"/> pages start with
    /// <paramref name="flags"/> before the sections are published (memmap_init_zone_device giving every
    /// struct page of a ZONE_DEVICE range its zone): one vectorised fill per section rather than a
    /// store per page through the section table.
    /// </summary>
    public void Online(ulong firstPfn, ulong count, PageFlags flags, ulong flaggedPages)
    {
        CheckSectionAligned(firstPfn, count);
        if (flaggedPages > count) throw new ArgumentOutOfRangeException(nameof(flaggedPages));
        _hotplugLock.Lock();
        try
        {
            ulong first = firstPfn >> SectionShift, last = (firstPfn + count) >> SectionShift;
            for (ulong s = first; s < last; s++)
                if (s < (ulong)_sections.Length && _sections[s] != null)
                    throw new InvalidOperationException($"pfn section {s} is already online");
            var next = _sections;
            if (last > (ulong)next.Length)
            {
                next = new Section?[last];
                Array.Copy(_sections, next, _sections.Length);
            }
            else next = (Section?[])next.Clone();
            for (ulong s = first; s < last; s++)
            {
                Section section;
                if (_spareCount > 0)
                {
                    section = _spare[--_spareCount]!;
                    _spare[_spareCount] = null;
                    section.Reset();
                }
                else section = new Section();
                ulong from = s << SectionShift;
                if (flags != PageFlags.None && from < firstPfn + flaggedPages)
                    Array.Fill(section.Flags, flags, 0, (int)Math.Min(SectionPages, firstPfn + flaggedPages - from));
                next[s] = section;
            }
            Volatile.Write(ref _sections, next);
        }
        finally { _hotplugLock.Unlock(); }
    }

    /// <summary>sparse_remove_section: takes [<paramref name="firstPfn"/>, +<paramref name="count"/>) offline.</summary>
    public void Offline(ulong firstPfn, ulong count)
    {
        CheckSectionAligned(firstPfn, count);
        _hotplugLock.Lock();
        try
        {
            var next = (Section?[])_sections.Clone();
            for (ulong s = firstPfn >> SectionShift; s < (firstPfn + count) >> SectionShift; s++)
            {
                if (s >= (ulong)next.Length || next[s] == null) throw new InvalidOperationException($"pfn section {s} is not online");
            }
            for (ulong s = firstPfn >> SectionShift; s < (firstPfn + count) >> SectionShift; s++)
            {
                if (_spareCount < MaxSpareSections) _spare[_spareCount++] = next[s];
                next[s] = null;
            }
            Volatile.Write(ref _sections, next);
        }
        finally { _hotplugLock.Unlock(); }
    }

    /// <summary>pfn_valid: whether metadata exists for <paramref name="pfn"/>.</summary>
    public bool IsOnline(ulong pfn)
    {
        var sections = Volatile.Read(ref _sections);
        ulong s = pfn >> SectionShift;
        return s < (ulong)sections.Length && sections[s] != null;
    }

    /// <summary>page_ref_count.</summary>
    public ref int RefCount(ulong pfn) => ref SectionOf(pfn).RefCount[pfn & SectionMask];

    /// <summary>PTE mappings of this (sub)page (page_mapcount).</summary>
    public ref int MapCount(ulong pfn) => ref SectionOf(pfn).MapCount[pfn & SectionMask];

    /// <summary>On a large folio's head: PMD mappings of the whole folio (folio_entire_mapcount).</summary>
    public ref int EntireMapCount(ulong pfn) => ref SectionOf(pfn).EntireMapCount[pfn & SectionMask];

    /// <summary>The head of the folio containing <paramref name="pfn"/> (large folios are 2 MiB aligned).</summary>
    public ulong FolioHead(ulong pfn) => (Flags(pfn) & PageFlags.Tail) != 0 ? pfn & ~(ulong)(Page.PmdPages - 1) : pfn;

    /// <summary>FOLL_PIN pins (pin_user_pages) held on the page.</summary>
    public ref int PinCount(ulong pfn) => ref SectionOf(pfn).PinCount[pfn & SectionMask];

    /// <summary>page->flags.</summary>
    public ref PageFlags Flags(ulong pfn) => ref SectionOf(pfn).Flags[pfn & SectionMask];

    /// <summary>folio_order of the folio headed here (0 for base pages).</summary>
    public ref byte Order(ulong pfn) => ref SectionOf(pfn).Order[pfn & SectionMask];

    /// <summary>page->mapping as an owner id (anon_vma root, file, or pgmap).</summary>
    public ref int Owner(ulong pfn) => ref SectionOf(pfn).Owner[pfn & SectionMask];

    /// <summary>page->index: the page's linear offset in its owner (for rmap).</summary>
    public ref ulong Index(ulong pfn) => ref SectionOf(pfn).Index[pfn & SectionMask];

    /// <summary>
    /// set_bit on page->flags: atomically sets <paramref name="flags"/>. Any flag change on a page
    /// other threads can reach must be atomic: a plain read-modify-write racing with
    /// folio_trylock/folio_unlock (a CAS on the same word) would lose the lock bit — leaving a
    /// locked page "unlocked" (PAGE-R03 at the owner's unlock) or an unlocked page locked forever.
    /// </summary>
    public void SetFlags(ulong pfn, PageFlags flags)
        => Interlocked.Or(ref Unsafe.As<PageFlags, uint>(ref Flags(pfn)), (uint)flags);

    /// <summary>clear_bit on page->flags: atomically clears <paramref name="flags"/> (see <see cref="SetFlags"/>).</summary>
    public void ClearFlags(ulong pfn, PageFlags flags)
        => Interlocked.And(ref Unsafe.As<PageFlags, uint>(ref Flags(pfn)), ~(uint)flags);

    /// <summary>
    /// page->flags of <paramref name="pfn"/>, or false when its section is offline. One read of
    /// the section table, so it cannot throw between an online check and the read as
    /// <see cref="IsOnline"/> followed by <see cref="Flags"/> can when memory is unplugged
    /// concurrently (a waiter that holds no reference, like folio_wait_bit's wake check).
    /// </summary>
    public bool TryReadFlags(ulong pfn, out PageFlags flags)
    {
        var sections = Volatile.Read(ref _sections);
        ulong s = pfn >> SectionShift;
        var section = s < (ulong)sections.Length ? sections[s] : null;
        if (section == null)
        {
            flags = 0;
            return false;
        }
        flags = (PageFlags)Volatile.Read(ref Unsafe.As<PageFlags, uint>(ref section.Flags[pfn & SectionMask]));
        return true;
    }

    /// <summary>Whether every flag of <paramref name="flags"/> is set on <paramref name="pfn"/>.</summary>
    public bool Has(ulong pfn, PageFlags flags) => (Flags(pfn) & flags) == flags;

    /// <summary>One past the highest pfn any online section covers.</summary>
    public ulong MaxPfn => (ulong)Volatile.Read(ref _sections).Length << SectionShift;

    /// <summary>Number of online sections (for tests and reports).</summary>
    public int OnlineSections
    {
        get
        {
            int n = 0;
            foreach (var s in Volatile.Read(ref _sections)) if (s != null) n++;
            return n;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Section SectionOf(ulong pfn)
    {
        var sections = _sections;
        ulong s = pfn >> SectionShift;
        if (s >= (ulong)sections.Length) ThrowOffline(pfn);
        return sections[s] ?? ThrowOffline(pfn);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Section ThrowOffline(ulong pfn)
        => throw new KernelBugException("PAGE-R02", $"pfn 0x{pfn:x} has no struct page (section offline)");

    private static void CheckSectionAligned(ulong firstPfn, ulong count)
    {
        if (count == 0 || ((firstPfn | count) & SectionMask) != 0)
            throw new ArgumentException($"pfn range 0x{firstPfn:x}+0x{count:x} is not section aligned ({SectionPages} pages)");
    }
}
