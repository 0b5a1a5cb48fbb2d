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

/// <summary>
/// The value is the pfn of a device-private page (vmf->page in migrate_to_ram): private device
/// memory has no CPU mapping, so it must never reach a <see cref="CpuAccessAttribute"/> parameter
/// (HMM1042); its bytes are reached through the device's copy engine only.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Method | AttributeTargets.Field, AllowMultiple = false)]
public sealed class DevicePrivatePfnAttribute : Attribute
{
}

/// <summary>
/// The CPU reads or writes the bytes of the page this parameter names (kmap_local_page,
/// copy_highpage): it must be CPU-addressable memory — system RAM, coherent or p2p device memory —
/// never a device-private page (HMM1042).
/// </summary>
[AttributeUsage(AttributeTargets.Parameter, AllowMultiple = false)]
public sealed class CpuAccessAttribute : Attribute
{
}
