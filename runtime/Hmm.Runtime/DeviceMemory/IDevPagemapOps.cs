using Hmm.Dsl;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.DeviceMemory;

/// <summary>
/// Simulates <c>struct vm_fault</c> as migrate_to_ram sees it: the faulting address and VMA,
/// and the device page (<c>vmf->page</c>) the core has referenced and locked.
/// </summary>
public readonly struct VmFault
{
    internal VmFault(AddressSpace mm, Vma vma, ulong address, ulong page, bool write)
    {
        Mm = mm;
        Vma = vma;
        Address = address;
        Page = page;
        Write = write;
    }

    /// <summary>The faulting address space (its mmap lock is held for read).</summary>
    public AddressSpace Mm { get; }

    /// <summary>The VMA containing <see cref="Address"/>.</summary>
    public Vma Vma { get; }

    /// <summary>The faulting address, page aligned as the kernel's vmf->address is.</summary>
    public ulong Address { get; }

    /// <summary>vmf->page: the locked, referenced device page (the folio head if PMD-mapped). Pass it as <c>MigrateVma.FaultPage</c> (MIG-R08). Device-private: the CPU cannot read it (HMM1042).</summary>
    [DevicePrivatePfn]
    public ulong Page { get; }

    /// <summary>Whether the faulting access was a write.</summary>
    public bool Write { get; }
}

/// <summary>
/// Simulates <c>struct dev_pagemap_ops</c>: the driver callbacks for its device memory.
/// </summary>
public interface IDevPagemapOps
{
    /// <summary>
    /// folio_free / page_free: the device page's last reference went. The driver returns it to its
    /// allocator here; the page may be initialised again (<see cref="DevPagemap.InitPage"/>) only
    /// after this call (MIG-R10).
    /// </summary>
    [AtomicContext]
    void PageFree(DevPagemap pgmap, ulong pfn);

    /// <summary>
    /// migrate_to_ram (private memory only): a CPU access hit a device-private entry. The driver
    /// must migrate at least the faulting page back to system memory (migrate_vma with
    /// FaultPage = <see cref="VmFault.Page"/>), or return SigBus/Oom. Called with the mmap lock
    /// held for read; must not take it again (MIG-R09).
    /// </summary>
    [RequiresShared("vmf.Mm.MmapLock")]
    VmFaultResult MigrateToRam(in VmFault vmf);

    /// <summary>
    /// folio_split (private memory): the 2 MiB device folio headed at <paramref name="head"/> is
    /// being split into 512 base pages (e.g. to migrate part of it). Each page is afterwards freed
    /// on its own through <see cref="PageFree"/> when its last reference goes. Optional.
    /// </summary>
    void FolioSplit(DevPagemap pgmap, ulong head) { }
}
