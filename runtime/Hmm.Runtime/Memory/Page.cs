namespace Hmm.Runtime.Memory;

/// <summary>
/// Page geometry of the simulated machine (x86-64 with 4-level paging): PAGE_SHIFT, PMD_SHIFT,
/// PUD_SHIFT and friends.
/// </summary>
public static class Page
{
    /// <summary>PAGE_SHIFT.</summary>
    public const int Shift = 12;
    /// <summary>PAGE_SIZE: 4 KiB.</summary>
    public const int Size = 1 << Shift;
    /// <summary>Mask of the offset inside a page.</summary>
    public const ulong OffsetMask = Size - 1;
    /// <summary>PMD_SHIFT: one PMD leaf maps 2 MiB.</summary>
    public const int PmdShift = 21;
    /// <summary>HPAGE_PMD_ORDER: 9 (512 base pages).</summary>
    public const int PmdOrder = PmdShift - Shift;
    /// <summary>PMD_SIZE: 2 MiB.</summary>
    public const ulong PmdSize = 1UL << PmdShift;
    /// <summary>Base pages per PMD leaf (HPAGE_PMD_NR).</summary>
    public const int PmdPages = 1 << PmdOrder;
    /// <summary>PUD_SHIFT: one PUD entry covers 1 GiB.</summary>
    public const int PudShift = 30;
    /// <summary>PUD order: 18.</summary>
    public const int PudOrder = PudShift - Shift;
    /// <summary>PGDIR_SHIFT: one PGD entry covers 512 GiB.</summary>
    public const int PgdShift = 39;
    /// <summary>Entries per page-table page (PTRS_PER_PTE and friends).</summary>
    public const int EntriesPerTable = 512;

    /// <summary>Rounds <paramref name="address"/> down to its page.</summary>
    public static ulong AlignDown(ulong address) => address & ~OffsetMask;

    /// <summary>Whether <paramref name="address"/> is page aligned.</summary>
    public static bool IsAligned(ulong address) => (address & OffsetMask) == 0;

    /// <summary>Rounds <paramref name="length"/> up to whole pages; false on overflow.</summary>
    public static bool TryAlignUp(ulong length, out ulong aligned)
    {
        aligned = (length + OffsetMask) & ~OffsetMask;
        return aligned >= length;
    }
}
