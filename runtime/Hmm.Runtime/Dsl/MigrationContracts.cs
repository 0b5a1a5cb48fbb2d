namespace Hmm.Dsl;

// Contracts of the migration copy step (MIG-R06) the HMM1040 analyzer reads: which call builds a
// destination entry, which copy may fail, and which step commits the destinations. Like the
// other contracts they carry no behaviour.

/// <summary>
/// The method builds a migrate_vma destination word (migrate_pfn): storing its result in
/// <c>dst[]</c> hands that page to the commit step, so its data must be in place first (MIG-R06).
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class DestinationPfnAttribute : Attribute
{
}

/// <summary>
/// The method copies into migration destinations and returns false when the copy failed (a DMA
/// error): the destinations of a failed copy must not stay in <c>dst[]</c> (MIG-R06).
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class CopyMayFailAttribute : Attribute
{
}

/// <summary>
/// The method commits every VALID destination entry as the new page of its address
/// (migrate_vma_pages, migrate_device_pages): from here on the CPU will see that page's data,
/// so each one's copy must have succeeded (MIG-R06).
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class CommitsDestinationsAttribute : Attribute
{
}
