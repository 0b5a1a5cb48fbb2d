using System.Runtime.CompilerServices;

namespace Hmm.Runtime.Interleaving;

/// <summary>
/// Named points in the runtime where a test can stop a thread to force an interleaving
/// deterministically (no sleeps): the race windows of issue 8.
/// </summary>
internal enum TestHookPoint
{
    /// <summary>A CPU access translated its address and is about to load or store (inside its TLB section). Subject: the AddressSpace.</summary>
    CpuAccessTranslated,
    /// <summary>A TLB flush found CPU accesses in flight and is about to wait for them. Subject: the AddressSpace's TLB.</summary>
    TlbFlushWaiting,
    /// <summary>do_swap_page read a device-private entry (without the PTL) and is about to handle it. Subject: the AddressSpace.</summary>
    DevicePrivateEntryRead,
    /// <summary>do_swap_page holds the device page locked and referenced, about to call migrate_to_ram. Subject: the AddressSpace.</summary>
    BeforeMigrateToRam,
    /// <summary>migrate_vma_setup collected and unmapped its pages and is about to return. Subject: the MigrateVma.</summary>
    MigrateVmaSetUp,
    /// <summary>try_to_migrate, holding the folio's anon_vma rwsem for read, found a mapping of the folio and is about to take that mm's page-table lock and convert it. Subject: that AddressSpace; address: the mapping's address.</summary>
    TryToMigrateHit,
    /// <summary>split_huge_page turned every mapping of the folio into a migration entry and is about to freeze its refcount. Subject: the Machine; address: the folio's head pfn.</summary>
    FolioSplitUnmapped,
    /// <summary>split_huge_page froze the folio's refcount (folio_ref_freeze) and is about to rewrite its subpages. Subject: the Machine; address: the head pfn.</summary>
    FolioRefsFrozen,
    /// <summary>A CPU fault found a migration entry and is about to wait for the folio's lock. Subject: the AddressSpace; address: the faulting address.</summary>
    MigrationEntryWait,
    /// <summary>migrate_device_range turned the mappings of the range's pages into migration entries and is about to return. Subject: the Machine; address: the range's first pfn.</summary>
    MigrateDeviceUnmapped,
    /// <summary>A device folio's last reference was dropped and free_zone_device_folio is about to run. Subject: the Machine; address: the folio's pfn.</summary>
    DeviceFolioFreeing,
    /// <summary>mprotect holds the mmap lock for write and is about to change one VMA's protection (mprotect_fixup). Subject: the AddressSpace; address: the VMA's start.</summary>
    MprotectFixup,
    /// <summary>dup_mmap holds the parent's (and child's) mmap lock for write, linked the child's VMA to its lineage (anon_vma_fork) and is about to copy its page tables. Subject: the parent AddressSpace; address: the VMA's start.</summary>
    ForkVmaLinked,
    /// <summary>move_vma holds the mmap lock for write, linked the new VMA and is about to move the page tables. Subject: the AddressSpace; address: the old address.</summary>
    MremapVmaLinked,
    /// <summary>A CPU access read the TLB epoch and is about to be counted in its slot (TlbShootdown.Enter). Subject: the mm's TlbShootdown; address: 0.</summary>
    TlbEpochRead,
    /// <summary>migrate_vma_finalize put entries back by walking the range's page tables (the sole-mapping fast path) instead of the rmap. Subject: the AddressSpace; address: the number of entries so restored.</summary>
    MigrationRangeRestored,
    /// <summary>remove_migration_ptes, holding the folio's anon_vma rwsem for read, found migration entries in one VMA of the lineage and is about to take that mm's page-table lock to restore them. Subject: that AddressSpace; address: the first entry's address.</summary>
    RemoveMigrationPtesVisit,
    /// <summary>A generated device memory's hot-add pushed a new chunk's pages on its free lists and is about to return (<see cref="DeviceMemoryHookPoints.ChunkPlugged"/>). Subject: the memory; address: the chunk's first pfn.</summary>
    DeviceChunkPlugged,
    /// <summary>A generated page_free is about to take its free-list lock to give a device page back (<see cref="DeviceMemoryHookPoints.PageFreeing"/>). Subject: the memory; address: the page's pfn.</summary>
    DevicePageFreeing,
    /// <summary>split_huge_page's unmap walk (holding the folio's anon_vma rwsem for write) found mappings of the folio in one VMA of the lineage and is about to split and convert them. Subject: that AddressSpace; address: the first mapping's address.</summary>
    FolioSplitVisit,
    /// <summary>MADV_COLLAPSE (collapse_huge_page) checked a block's pages, allocated the huge folio and is about to copy into it. Subject: the AddressSpace; address: the block's start.</summary>
    CollapseCopying,
}

/// <summary>
/// The runtime's test-hook mechanism: one static nullable callback checked at each
/// <see cref="TestHookPoint"/>. When no test installed one, a hook costs a static read and a null
/// check; nothing allocates.
/// </summary>
internal static class TestHooks
{
    private static Action<TestHookPoint, object?, ulong>? s_callback;

    /// <summary>The callback (tests install it and remove it in a finally; null when unused).</summary>
    internal static Action<TestHookPoint, object?, ulong>? Callback
    {
        get => Volatile.Read(ref s_callback);
        set => Volatile.Write(ref s_callback, value);
    }

    /// <summary>Calls the installed callback, if any, for <paramref name="point"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Fire(TestHookPoint point, object? subject, ulong address)
    {
        var callback = Volatile.Read(ref s_callback);
        if (callback != null) callback(point, subject, address);
    }
}
