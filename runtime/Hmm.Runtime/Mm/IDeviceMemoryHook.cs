namespace Hmm.Runtime.Mm;

/// <summary>What kind of ZONE_DEVICE memory a pfn belongs to (as the mm core needs to know it).</summary>
internal enum DevicePageClass
{
    /// <summary>Not device memory.</summary>
    None,
    /// <summary>MEMORY_DEVICE_PRIVATE: never CPU-mapped; non-present device-private entries.</summary>
    Private,
    /// <summary>MEMORY_DEVICE_COHERENT: CPU-addressable, ordinary present entries.</summary>
    Coherent,
    /// <summary>MEMORY_DEVICE_PCI_P2PDMA: BAR memory.</summary>
    P2PDma,
}

/// <summary>
/// What the mm core needs from the device-memory layer (dev_pagemap lookups and ops), owned by
/// the mm layer so it does not depend on the layer above it; <c>Hmm.Runtime.DeviceMemory</c>
/// installs the implementation on the machine when the first device memory is hot-plugged.
/// </summary>
internal interface IDeviceMemoryHook
{
    /// <summary>The class of device memory <paramref name="pfn"/> is in.</summary>
    DevicePageClass Classify(ulong pfn);

    /// <summary>page_pgmap(page)->owner for a device pfn, else null.</summary>
    object? PgmapOwner(ulong pfn);

    /// <summary>The CPU-visible bytes of a coherent (or p2p) device page; throws for private memory.</summary>
    unsafe byte* CpuAddress(ulong pfn);

    /// <summary>The bytes of any device page, private memory included (what a DMA engine reaches).</summary>
    unsafe byte* DeviceAddress(ulong pfn);

    /// <summary>dev_pagemap_ops.folio_split: a 2 MiB device folio becomes 512 base pages.</summary>
    void FolioSplit(ulong head);

    /// <summary>dev_pagemap_ops.folio_free: the page's last reference went.</summary>
    void PageFree(ulong pfn);

    /// <summary>
    /// dev_pagemap_ops.migrate_to_ram for a CPU fault on a device-private entry at
    /// <paramref name="address"/>; the core holds the mmap read lock, a reference on the page and
    /// its lock.
    /// </summary>
    FaultResult MigrateToRam(AddressSpace mm, Vma vma, ulong address, ulong pfn, bool write);
}
