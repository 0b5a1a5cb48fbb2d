namespace Hmm.Runtime.Mm;

/// <summary>PROT_* bits of mmap/mprotect.</summary>
[Flags]
public enum Prot
{
    /// <summary>PROT_NONE.</summary>
    None = 0,
    /// <summary>PROT_READ.</summary>
    Read = 1,
    /// <summary>PROT_WRITE (on x86 the hardware can then also read).</summary>
    Write = 2,
    /// <summary>PROT_EXEC.</summary>
    Exec = 4,
}

/// <summary>MAP_* flags of mmap, with Linux's values.</summary>
[Flags]
public enum MapFlags
{
    /// <summary>No flags (invalid alone: one of Shared or Private is required).</summary>
    None = 0,
    /// <summary>MAP_SHARED.</summary>
    Shared = 0x01,
    /// <summary>MAP_PRIVATE.</summary>
    Private = 0x02,
    /// <summary>MAP_FIXED: place exactly at the address, replacing what is there.</summary>
    Fixed = 0x10,
    /// <summary>MAP_ANONYMOUS.</summary>
    Anonymous = 0x20,
    /// <summary>MAP_POPULATE: prefault the pages.</summary>
    Populate = 0x8000,
    /// <summary>MAP_HUGETLB: back with 2 MiB hugetlb pages from the machine's pool.</summary>
    HugeTlb = 0x40000,
    /// <summary>MAP_FIXED_NOREPLACE: like Fixed but fails with EEXIST instead of replacing.</summary>
    FixedNoReplace = 0x100000,
}

/// <summary>MREMAP_* flags.</summary>
[Flags]
public enum MremapFlags
{
    /// <summary>No flags: resize in place or fail.</summary>
    None = 0,
    /// <summary>MREMAP_MAYMOVE.</summary>
    MayMove = 1,
    /// <summary>MREMAP_FIXED (requires MayMove).</summary>
    Fixed = 2,
    /// <summary>MREMAP_DONTUNMAP (requires MayMove, same size): the old range stays mapped but empty.</summary>
    DontUnmap = 4,
}

/// <summary>MADV_* advice values, with Linux's numbers.</summary>
public enum Advice
{
    /// <summary>MADV_NORMAL.</summary>
    Normal = 0,
    /// <summary>MADV_DONTNEED: drop the pages; private anonymous memory reads back as zeros.</summary>
    DontNeed = 4,
    /// <summary>MADV_FREE: the pages may be reclaimed lazily; contents stay until then.</summary>
    Free = 8,
    /// <summary>MADV_COLD: deactivate the pages (make them old) so reclaim takes them first.</summary>
    Cold = 20,
    /// <summary>MADV_PAGEOUT: reclaim the pages now (the simulated machine has no swap device).</summary>
    PageOut = 21,
    /// <summary>MADV_HUGEPAGE: allow transparent huge pages.</summary>
    HugePage = 14,
    /// <summary>MADV_NOHUGEPAGE: forbid transparent huge pages.</summary>
    NoHugePage = 15,
    /// <summary>MADV_COLLAPSE: collapse the range into transparent huge pages now.</summary>
    Collapse = 25,
}

/// <summary>Simulates <c>vm_flags_t</c> (VM_*), with the kernel's bit values.</summary>
[Flags]
public enum VmFlags : ulong
{
    /// <summary>No flags.</summary>
    None = 0,
    /// <summary>VM_READ.</summary>
    Read = 0x1,
    /// <summary>VM_WRITE.</summary>
    Write = 0x2,
    /// <summary>VM_EXEC.</summary>
    Exec = 0x4,
    /// <summary>VM_SHARED.</summary>
    Shared = 0x8,
    /// <summary>VM_MAYREAD.</summary>
    MayRead = 0x10,
    /// <summary>VM_MAYWRITE.</summary>
    MayWrite = 0x20,
    /// <summary>VM_MAYEXEC.</summary>
    MayExec = 0x40,
    /// <summary>VM_MAYSHARE.</summary>
    MayShare = 0x80,
    /// <summary>VM_PFNMAP: raw pfns without struct pages.</summary>
    PfnMap = 0x400,
    /// <summary>VM_LOCKED.</summary>
    Locked = 0x2000,
    /// <summary>VM_IO: memory-mapped I/O.</summary>
    Io = 0x4000,
    /// <summary>VM_DONTCOPY: not inherited by fork.</summary>
    DontCopy = 0x20000,
    /// <summary>VM_DONTEXPAND: mremap may not grow it.</summary>
    DontExpand = 0x40000,
    /// <summary>VM_HUGETLB.</summary>
    HugeTlb = 0x400000,
    /// <summary>VM_MIXEDMAP: a mix of struct-page and raw pfn mappings (vm_insert_page).</summary>
    MixedMap = 0x10000000,
    /// <summary>VM_HUGEPAGE (MADV_HUGEPAGE).</summary>
    HugePage = 0x20000000,
    /// <summary>VM_NOHUGEPAGE (MADV_NOHUGEPAGE).</summary>
    NoHugePage = 0x40000000,

    /// <summary>VM_SPECIAL: IO | DONTEXPAND | PFNMAP | MIXEDMAP.</summary>
    Special = Io | DontExpand | PfnMap | MixedMap,
    /// <summary>Flags that must match for two VMAs to merge (everything but the MADV_* hints is compared).</summary>
    AccessMask = Read | Write | Exec,
}
