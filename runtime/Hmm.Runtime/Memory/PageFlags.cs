namespace Hmm.Runtime.Memory;

/// <summary>
/// Simulates the <c>page->flags</c> bits (PG_*) and page types the simulator needs.
/// </summary>
[Flags]
public enum PageFlags : uint
{
    /// <summary>No flags.</summary>
    None = 0,
    /// <summary>PageBuddy: the frame is free, owned by the allocator.</summary>
    Free = 1 << 0,
    /// <summary>PG_reserved: never allocated or freed (the zero pages).</summary>
    Reserved = 1 << 1,
    /// <summary>PG_head: first page of a large folio (order in <see cref="PageFrames.Order"/>).</summary>
    Head = 1 << 2,
    /// <summary>A tail page of a large folio; its metadata lives in the head.</summary>
    Tail = 1 << 3,
    /// <summary>PageAnon: mapped anonymous memory; <see cref="PageFrames.Owner"/> is the anon_vma root.</summary>
    Anon = 1 << 4,
    /// <summary>Page-cache page of a file or shmem object; owner is the file.</summary>
    File = 1 << 5,
    /// <summary>PG_locked (folio lock).</summary>
    Locked = 1 << 6,
    /// <summary>PG_dirty.</summary>
    Dirty = 1 << 7,
    /// <summary>PG_lru: on an LRU list (isolatable for migration).</summary>
    Lru = 1 << 8,
    /// <summary>ZONE_DEVICE page (device memory).</summary>
    Device = 1 << 9,
    /// <summary>The shared zero page or huge zero page.</summary>
    Zero = 1 << 10,
    /// <summary>PG_anon_exclusive: this anon page is exclusive to one mapping (no COW needed).</summary>
    AnonExclusive = 1 << 11,
    /// <summary>Driver-inserted kernel page with no mapping (vm_insert_page); not migratable.</summary>
    Kernel = 1 << 12,
    /// <summary>A hugetlb folio from the machine's pool (returns to the pool when freed).</summary>
    HugeTlb = 1 << 13,
    /// <summary>MADV_FREE'd anonymous page: reclaim may drop it while it stays clean.</summary>
    LazyFree = 1 << 14,
    /// <summary>
    /// PG_referenced: reclaim found the folio referenced once (folio_check_references) and
    /// spared it for another trip; a second reference then keeps it for good, no reference lets it
    /// go. Cleared by MADV_COLD, MADV_PAGEOUT and MADV_FREE.
    /// </summary>
    Referenced = 1 << 15,
}
