using System.Runtime.CompilerServices;

namespace Hmm.Runtime.Mm;

/// <summary>What a CPU page-table entry holds (reference/kernel-hmm.md A.3).</summary>
public enum PteKind : byte
{
    /// <summary>pte_none: never touched or zapped.</summary>
    None = 0,
    /// <summary>A present mapping (normal, zero page, special, protnone, or a PMD leaf).</summary>
    Present = 1,
    /// <summary>A real swap entry.</summary>
    Swap = 2,
    /// <summary>A migration entry: CPU faults wait until the migration ends.</summary>
    Migration = 3,
    /// <summary>A device-private entry referencing a ZONE_DEVICE private page.</summary>
    DevicePrivate = 4,
    /// <summary>A device-exclusive entry referencing the original anonymous page.</summary>
    DeviceExclusive = 5,
    /// <summary>A hardware-poison marker.</summary>
    HwPoison = 6,
    /// <summary>Another PTE marker (e.g. uffd-wp); HMM treats it like none.</summary>
    Marker = 7,
    /// <summary>A non-leaf entry pointing to the next page-table level.</summary>
    Table = 8,
}

/// <summary>
/// Simulates <c>pte_t</c> / <c>pmd_t</c>: one 64-bit page-table entry. The layout follows x86-64
/// where it matters (present bit 0, write bit 1, PSE bit 7 for a PMD leaf, pfn in bits 12–51) and
/// encodes the kernel's non-present "swap-type" entries (migration, device-private,
/// device-exclusive, hwpoison, markers) in the low bits of a non-present entry.
/// </summary>
public readonly struct Pte : IEquatable<Pte>
{
    /// <summary>_PAGE_PRESENT.</summary>
    public const ulong PresentBit = 1UL << 0;
    /// <summary>_PAGE_RW; on a non-present entry: a writable migration or device-private entry.</summary>
    public const ulong WriteBit = 1UL << 1;
    /// <summary>Kind field of a non-present entry (bits 2–4).</summary>
    public const int KindShift = 2;
    /// <summary>Mask of the kind field.</summary>
    public const ulong KindMask = 0x7UL << KindShift;
    /// <summary>_PAGE_ACCESSED (young); migration entries keep it too.</summary>
    public const ulong YoungBit = 1UL << 5;
    /// <summary>_PAGE_DIRTY.</summary>
    public const ulong DirtyBit = 1UL << 6;
    /// <summary>_PAGE_PSE: a PMD leaf (2 MiB mapping), present or not.</summary>
    public const ulong HugeBit = 1UL << 7;
    /// <summary>_PAGE_SPECIAL: a mapping with no struct page (PFNMAP-like), also set on the zero page.</summary>
    public const ulong SpecialBit = 1UL << 8;
    /// <summary>_PAGE_PROTNONE: present in software but not to the hardware (PROT_NONE, NUMA hinting).</summary>
    public const ulong ProtNoneBit = 1UL << 9;
    /// <summary>_PAGE_SOFT_DIRTY.</summary>
    public const ulong SoftDirtyBit = 1UL << 10;
    /// <summary>On a migration entry: readable-exclusive (anon exclusive).</summary>
    public const ulong ReadExclusiveBit = 1UL << 11;
    /// <summary>First bit of the pfn (or, for a <see cref="PteKind.Table"/> entry, the table index).</summary>
    public const int PfnShift = 12;
    /// <summary>Mask of the pfn field (40 bits).</summary>
    public const ulong PfnMask = ((1UL << 40) - 1) << PfnShift;

    private readonly ulong _raw;

    /// <summary>Wraps a raw entry.</summary>
    public Pte(ulong raw) => _raw = raw;

    /// <summary>The raw 64-bit value.</summary>
    public ulong Raw => _raw;

    /// <summary>pte_none.</summary>
    public bool IsNone => _raw == 0;

    /// <summary>pte_present (including protnone entries).</summary>
    public bool IsPresent => (_raw & PresentBit) != 0;

    /// <summary>pte_write.</summary>
    public bool IsWritable => (_raw & WriteBit) != 0;

    /// <summary>A PMD leaf (present THP/hugetlb, or a non-present PMD entry).</summary>
    public bool IsHuge => (_raw & HugeBit) != 0;

    /// <summary>pte_special.</summary>
    public bool IsSpecial => (_raw & SpecialBit) != 0;

    /// <summary>pte_protnone.</summary>
    public bool IsProtNone => (_raw & ProtNoneBit) != 0;

    /// <summary>pte_dirty.</summary>
    public bool IsDirty => (_raw & DirtyBit) != 0;

    /// <summary>pte_young.</summary>
    public bool IsYoung => (_raw & YoungBit) != 0;

    /// <summary>pte_soft_dirty.</summary>
    public bool IsSoftDirty => (_raw & SoftDirtyBit) != 0;

    /// <summary>The entry's kind.</summary>
    public PteKind Kind
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _raw == 0 ? PteKind.None
            : (_raw & PresentBit) != 0 ? ((_raw & HugeBit) == 0 && (_raw & TableMarker) != 0 ? PteKind.Table : PteKind.Present)
            : (PteKind)((_raw & KindMask) >> KindShift);
    }

    /// <summary>pte_pfn / swp_offset_pfn: the page frame the entry references.</summary>
    public ulong Pfn => (_raw & PfnMask) >> PfnShift;

    // Non-leaf entries are present entries carrying this otherwise unused software bit.
    internal const ulong TableMarker = 1UL << 52;

    /// <summary>A present leaf mapping of <paramref name="pfn"/>.</summary>
    public static Pte Present(ulong pfn, bool writable, bool dirty = false, bool huge = false, bool special = false)
        => new((pfn << PfnShift) | PresentBit | YoungBit
               | (writable ? WriteBit : 0) | (dirty ? DirtyBit : 0) | (huge ? HugeBit : 0) | (special ? SpecialBit : 0));

    /// <summary>A non-present swap-type entry of <paramref name="kind"/> referencing <paramref name="pfn"/>.</summary>
    public static Pte NonPresent(PteKind kind, ulong pfn, bool writable, bool huge = false)
    {
        if (kind is PteKind.None or PteKind.Present or PteKind.Table) throw new ArgumentOutOfRangeException(nameof(kind));
        return new((pfn << PfnShift) | ((ulong)kind << KindShift) | (writable ? WriteBit : 0) | (huge ? HugeBit : 0));
    }

    /// <summary>A non-leaf entry pointing at page-table page <paramref name="tableIndex"/>.</summary>
    internal static Pte TableEntry(int tableIndex) => new(((ulong)tableIndex << PfnShift) | PresentBit | TableMarker);

    /// <summary>pte_wrprotect.</summary>
    public Pte WithoutWrite() => new(_raw & ~WriteBit);

    /// <summary>pte_mkwrite.</summary>
    public Pte WithWrite() => new(_raw | WriteBit);

    /// <inheritdoc/>
    public bool Equals(Pte other) => _raw == other._raw;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Pte p && p._raw == _raw;

    /// <inheritdoc/>
    public override int GetHashCode() => _raw.GetHashCode();

    /// <summary>Equality of raw values.</summary>
    public static bool operator ==(Pte a, Pte b) => a._raw == b._raw;

    /// <summary>Inequality of raw values.</summary>
    public static bool operator !=(Pte a, Pte b) => a._raw != b._raw;

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        PteKind.None => "none",
        PteKind.Table => $"table#{Pfn}",
        PteKind.Present => $"pfn 0x{Pfn:x}{(IsWritable ? " rw" : " ro")}{(IsHuge ? " huge" : "")}{(IsSpecial ? " special" : "")}{(IsProtNone ? " protnone" : "")}",
        _ => $"{Kind} pfn 0x{Pfn:x}{(IsWritable ? " rw" : " ro")}{(IsHuge ? " huge" : "")}",
    };
}
