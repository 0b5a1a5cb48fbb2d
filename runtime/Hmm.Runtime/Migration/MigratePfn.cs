namespace Hmm.Runtime.Migration;

/// <summary>
/// Simulates the <c>MIGRATE_PFN_*</c> encoding of a migrate_vma src/dst word (reference A.9):
/// VALID bit 0, MIGRATE bit 1, WRITE bit 3, COMPOUND bit 4, pfn from bit 6.
/// </summary>
public static class MigratePfn
{
    /// <summary>MIGRATE_PFN_VALID: the pfn field is meaningful.</summary>
    public const ulong Valid = 1UL << 0;
    /// <summary>MIGRATE_PFN_MIGRATE: the entry is being (or was) migrated.</summary>
    public const ulong Migrate = 1UL << 1;
    /// <summary>MIGRATE_PFN_WRITE: the source was mapped writable.</summary>
    public const ulong Write = 1UL << 3;
    /// <summary>MIGRATE_PFN_COMPOUND: head of a 2 MiB folio; the next 511 entries are placeholders.</summary>
    public const ulong Compound = 1UL << 4;
    /// <summary>MIGRATE_PFN_SHIFT.</summary>
    public const int Shift = 6;

    /// <summary>migrate_pfn(pfn): pfn with VALID.</summary>
    [Hmm.Dsl.DestinationPfn]
    public static ulong FromPfn(ulong pfn) => (pfn << Shift) | Valid;

    /// <summary>The pfn of a VALID word (migrate_pfn_to_page), or null.</summary>
    public static ulong? ToPfn(ulong word) => (word & Valid) != 0 ? word >> Shift : null;

    /// <summary>Whether the entry is VALID.</summary>
    public static bool IsValid(ulong word) => (word & Valid) != 0;
}

/// <summary>Simulates <c>enum migrate_vma_direction</c>: which source pages migrate_vma_setup collects.</summary>
[Flags]
public enum MigrateSelect
{
    /// <summary>Nothing beyond holes.</summary>
    None = 0,
    /// <summary>MIGRATE_VMA_SELECT_SYSTEM: system RAM pages (and the zero page).</summary>
    System = 1,
    /// <summary>MIGRATE_VMA_SELECT_DEVICE_PRIVATE: device-private pages of <c>PgmapOwner</c>.</summary>
    DevicePrivate = 2,
    /// <summary>MIGRATE_VMA_SELECT_DEVICE_COHERENT: device-coherent pages of <c>PgmapOwner</c>.</summary>
    DeviceCoherent = 4,
    /// <summary>MIGRATE_VMA_SELECT_COMPOUND: PMD-sized entries may be collected whole.</summary>
    Compound = 8,
}
