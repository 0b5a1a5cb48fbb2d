using Hmm.Runtime.Interleaving;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

/// <summary>Outcome of handle_mm_fault (the VM_FAULT_* classes that matter here).</summary>
internal enum FaultResult
{
    /// <summary>The entry now permits the access (or the fault raced and must simply be retried).</summary>
    Ok,
    /// <summary>VM_FAULT_SIGSEGV: no VMA, or the VMA forbids the access.</summary>
    SigSegv,
    /// <summary>VM_FAULT_SIGBUS: beyond EOF, hugetlb pool empty, device page could not come back.</summary>
    SigBus,
    /// <summary>VM_FAULT_OOM.</summary>
    Oom,
}

public sealed partial class AddressSpace
{
    /// <summary>
    /// handle_mm_fault for a CPU or remote (hmm_range_fault, GUP) access at <paramref name="address"/>.
    /// The caller holds the mmap lock (read or write). Checks the VMA's permission first, as
    /// do_user_addr_fault's access_error does: a write needs VM_WRITE, a read any access right.
    /// </summary>
    internal FaultResult HandleFault(ulong address, bool write)
    {
        var vma = VmaTree.Lookup(address);
        if (vma == null) return FaultResult.SigSegv;
        if (write ? (vma.Flags & VmFlags.Write) == 0 : !vma.IsAccessible) return FaultResult.SigSegv;
        return HandleVmaFault(vma, Page.AlignDown(address), write);
    }

    /// <summary>__handle_mm_fault on a VMA already checked for the access.</summary>
    internal FaultResult HandleVmaFault(Vma vma, ulong address, bool write)
    {
        ulong[]? pmdTable = Tables.PmdTable(address, allocate: false);
        if (pmdTable == null)
        {
            PageTableLock.Lock();
            try { pmdTable = Tables.PmdTable(address, allocate: true)!; }
            finally { PageTableLock.Unlock(); }
        }
        ref ulong pmd = ref pmdTable[PageTables.PmdIndex(address)];
        if (vma.IsHugeTlb) return HugeTlbFault(vma, address & ~(Page.PmdSize - 1), write, ref pmd);

        ulong pmdVal = Volatile.Read(ref pmd);
        if (pmdVal == 0 && ThpEligible(vma, address))
        {
            var r = HugeAnonFault(vma, address & ~(Page.PmdSize - 1), write, ref pmd);
            if (r != FaultResult.Ok || Volatile.Read(ref pmd) != 0) return r;
            pmdVal = 0;   // fell back to base pages
        }
        if (pmdVal != 0 && !PageTables.IsTable(pmdVal))
        {
            var leaf = new Pte(pmdVal);
            if (leaf.Kind != PteKind.Present) return SoftwareEntryFault(vma, address, write, ref pmd, leaf);
            if (!write || leaf.IsWritable) return FaultResult.Ok;
            if (TryReuseHugePmd(ref pmd, leaf)) return FaultResult.Ok;
            // do_huge_pmd_wp_page falls back to base pages: split the PMD and COW the one page.
            SplitHugePmd(vma, address & ~(Page.PmdSize - 1), notify: true);
        }
        ulong[] ptes;
        if (Volatile.Read(ref pmd) == 0)
        {
            PageTableLock.Lock();
            try { ptes = Tables.EnsurePteTable(ref pmd); }
            finally { PageTableLock.Unlock(); }
        }
        else ptes = Tables.TableOf(pmd);
        return PteFault(vma, address, write, ref ptes[PageTables.PteIndex(address)]);
    }

    private bool ThpEligible(Vma vma, ulong address)
    {
        if (!Machine.Options.TransparentHugePages || !vma.IsPrivateAnon) return false;
        if ((vma.Flags & (VmFlags.HugePage | VmFlags.NoHugePage)) != VmFlags.HugePage) return false;
        ulong start = address & ~(Page.PmdSize - 1);
        return start >= vma.Start && start + Page.PmdSize <= vma.End;
    }

    private FaultResult PteFault(Vma vma, ulong address, bool write, ref ulong slot)
    {
        ulong raw = Volatile.Read(ref slot);
        var pte = new Pte(raw);
        switch (pte.Kind)
        {
            case PteKind.None:
            case PteKind.Marker:
                // A device-file mapping has no ->fault: only what its driver inserted is there.
                if (vma.Ops != null) return FaultResult.SigBus;
                return vma.File == null ? AnonymousFault(vma, address, write, ref slot, raw) : FileFault(vma, address, write, ref slot, raw);
            case PteKind.Present:
                if (pte.IsProtNone)
                {
                    // The VMA allows the access (checked by the caller): a NUMA-hinting style fault restores it.
                    PageTableLock.Lock();
                    try { if (slot == raw) Volatile.Write(ref slot, raw & ~Pte.ProtNoneBit); }
                    finally { PageTableLock.Unlock(); }
                    return FaultResult.Ok;
                }
                if (!write || pte.IsWritable) return FaultResult.Ok;
                return WriteProtectFault(vma, address, ref slot, pte);
            case PteKind.DevicePrivate:
            case PteKind.DeviceExclusive:
            case PteKind.Migration:
                return SoftwareEntryFault(vma, address, write, ref slot, pte);
            default:
                return FaultResult.SigBus;
        }
    }

    /// <summary>
    /// Faults on non-present software entries: a device-private entry calls the owner's
    /// migrate_to_ram with the page referenced and locked (do_swap_page, reference B.7); a
    /// device-exclusive entry is restored (remove_device_exclusive_entry); a migration entry
    /// waits until the migration unlocks the page. Each returns Ok so the access is retried.
    /// </summary>
    /// <remarks>
    /// The entry was read without the PTL, so its page may have been migrated, freed and — for
    /// device memory — unplugged since: its struct page is looked at only under the PTL once the
    /// entry is known to be unchanged (issue 8, PAGE-R02).
    /// </remarks>
    private FaultResult SoftwareEntryFault(Vma vma, ulong address, bool write, ref ulong slot, Pte pte)
    {
        switch (pte.Kind)
        {
            case PteKind.Migration:
                TestHooks.Fire(TestHookPoint.MigrationEntryWait, this, address);
                MigrationEntryWait(ref slot, pte);
                return FaultResult.Ok;
            case PteKind.DeviceExclusive:
                RestoreExclusive(address & ~(ulong)((pte.IsHuge ? Page.PmdSize : Page.Size) - 1), ref slot, pte);
                return FaultResult.Ok;
            default:
                TestHooks.Fire(TestHookPoint.DevicePrivateEntryRead, this, address);
                return DevicePrivateFault(vma, address, write, ref slot, pte);
        }
    }

    /// <summary>
    /// migration_entry_wait: under the PTL, if <paramref name="slot"/> still holds the migration
    /// entry <paramref name="entry"/>, find its folio — which cannot be freed while the entry
    /// exists, since the migration (or split) holds it locked and referenced — drop the PTL and
    /// sleep until it is unlocked (migration_entry_wait_on_locked). A changed entry returns at
    /// once: the caller retries on what is there now. The folio's struct page is never read from
    /// an entry seen without the PTL: by then the migration may have finished, freed the page and
    /// its device memory been unplugged.
    /// </summary>
    internal void MigrationEntryWait(ref ulong slot, Pte entry)
    {
        ulong head;
        PageTableLock.Lock();
        try
        {
            if (System.Runtime.CompilerServices.Unsafe.IsNullRef(ref slot) || Volatile.Read(ref slot) != entry.Raw) return;
            head = Frames.FolioHead(entry.Pfn);
        }
        finally { PageTableLock.Unlock(); }
        Machine.WaitPageUnlocked(head);
    }

    /// <summary>
    /// <see cref="MigrationEntryWait(ref ulong, Pte)"/> for a walker that read <paramref name="raw"/>
    /// at <paramref name="address"/> (a PMD leaf when <paramref name="huge"/>) without the PTL,
    /// as hmm_range_fault does. Caller holds the mmap lock.
    /// </summary>
    internal void MigrationEntryWait(ulong address, ulong raw, bool huge)
        => MigrationEntryWait(ref SlotFor(address, huge), new Pte(raw));

    /// <summary>
    /// do_swap_page on a device-private entry: under the PTL, if the entry is unchanged and the
    /// page can be try-locked, take a reference (the PTL guarantees the page cannot be freed
    /// meanwhile), drop the PTL and call migrate_to_ram; otherwise wait for the page lock
    /// (migration_entry_wait_on_locked) and retry. No reference is taken before the trylock:
    /// a transient one would make a concurrent migration's refcount check fail for nothing.
    /// </summary>
    /// <remarks>
    /// migrate_to_ram may return 0 without having migrated the page — another migration held it,
    /// a racing reference failed the refcount check — and the CPU simply faults again, as in the
    /// kernel. Only a fault that never makes progress is a bug: <see cref="TranslateForCpu"/>
    /// reports it (MIG-R08) after its retry limit.
    /// </remarks>
    private FaultResult DevicePrivateFault(Vma vma, ulong address, bool write, ref ulong slot, Pte pte)
    {
        var device = Machine.DeviceMemory ?? throw new KernelBugException("MM-R05", $"device-private entry {pte} without device memory");
        bool locked;
        ulong head;
        PageTableLock.Lock();
        try
        {
            if (Volatile.Read(ref slot) != pte.Raw) return FaultResult.Ok;
            // Only now, with the entry unchanged under the PTL, is the device page known to be
            // live (the entry holds a reference): its memory cannot have been unplugged.
            head = Frames.FolioHead(pte.Pfn);
            locked = Machine.TryLockPage(head);
            if (locked) Machine.GetPage(head);
        }
        finally { PageTableLock.Unlock(); }
        if (!locked)
        {
            // Someone else (a migration, another fault) holds the page: wait, then retry the fault.
            Machine.WaitPageUnlocked(head);
            return FaultResult.Ok;
        }
        try
        {
            if (Volatile.Read(ref slot) != pte.Raw) return FaultResult.Ok;
            if (!pte.IsHuge && Frames.Order(head) == Page.PmdOrder && TakeSubpageOfLargeFolio(ref head, pte.Pfn)) return FaultResult.Ok;
            TestHooks.Fire(TestHookPoint.BeforeMigrateToRam, this, address);
            return device.MigrateToRam(this, vma, address, pte.IsHuge ? head : pte.Pfn, write);
        }
        finally
        {
            Machine.UnlockPage(head);
            Machine.PutPage(head);
        }
    }

    /// <summary>
    /// A PTE-mapped subpage of a large device-private folio (its PMD was split, e.g. by a partial
    /// munmap): the driver's migrate_to_ram sees vmf->page as a locked, referenced small folio
    /// (migrate_vma_split_folio splits the fault folio keeping the fault page locked), so split
    /// the folio and move the fault path's lock and reference to the subpage. Returns true to
    /// retry the fault when the split failed.
    /// </summary>
    private bool TakeSubpageOfLargeFolio(ref ulong head, ulong pfn)
    {
        if (!Machine.TrySplitFolio(head, 1)) return true;
        if (pfn == head) return false;
        // The subpage is a folio of its own now; a concurrent zap may already have freed it.
        if (!Machine.TryGetPage(pfn)) return true;
        if (!Machine.TryLockPage(pfn)) { Machine.PutPage(pfn); return true; }
        Machine.UnlockPage(head);
        Machine.PutPage(head);
        head = pfn;
        return false;
    }

    /// <summary>
    /// remove_device_exclusive_entry: a CPU access to a device-exclusive entry locks the page,
    /// raises CLEAR on it (owner none; reference H.6) and puts the original entry back, which
    /// revokes the device's atomic access.
    /// </summary>
    /// <remarks>With <paramref name="notify"/> false (fork's try_restore_exclusive_pte) the caller's own invalidation covers the change and no CLEAR is raised.</remarks>
    internal void RestoreExclusive(ulong address, ref ulong slot, Pte pte, bool notify = true)
    {
        ulong head = Frames.FolioHead(pte.Pfn);
        // folio_try_get: the entry was read without the PTL, so the folio may be mid-split
        // (frozen) or gone; the access then simply faults again.
        if (!Machine.TryGetPage(head)) return;
        if (Frames.FolioHead(pte.Pfn) != head || Volatile.Read(ref slot) != pte.Raw)
        {
            Machine.PutPage(head);
            return;
        }
        Machine.LockPage(head);
        ulong size = pte.IsHuge ? Page.PmdSize : Page.Size;
        var hook = notify ? InvalidateStart(NotifyEvent.Clear, address, address + size) : null;
        PageTableLock.Lock();
        try
        {
            if (Volatile.Read(ref slot) == pte.Raw)
            {
                // restore_exclusive_pte: mk_pte(page, vma->vm_page_prot) — an mprotect since may have made it PROT_NONE or read-only.
                var flags = VmaTree.Lookup(address)?.Flags ?? VmFlags.Write;
                bool none = (flags & (VmFlags.Read | VmFlags.Write | VmFlags.Exec)) == 0;
                ulong raw = Pte.Present(pte.Pfn, pte.IsWritable && (flags & VmFlags.Write) != 0, dirty: true, huge: pte.IsHuge).Raw;
                Volatile.Write(ref slot, none ? raw | Pte.ProtNoneBit : raw);
            }
        }
        finally { PageTableLock.Unlock(); }
        if (notify) InvalidateEnd(hook, NotifyEvent.Clear, address, address + size);
        Machine.UnlockPage(head);
        Machine.PutPage(head);
    }

    /// <summary>do_anonymous_page: the zero page for a read, a fresh zeroed page for a write.</summary>
    private FaultResult AnonymousFault(Vma vma, ulong address, bool write, ref ulong slot, ulong expected)
    {
        if (!write)
        {
            ulong zero = Pte.Present(Machine.ZeroPfn, writable: false, special: true).Raw;
            PageTableLock.Lock();
            try { if (slot == expected) Volatile.Write(ref slot, zero); }
            finally { PageTableLock.Unlock(); }
            return FaultResult.Ok;
        }
        var anon = AnonFor(vma);
        if (!Machine.Allocator.TryAllocate(0, out ulong pfn)) return FaultResult.Oom;
        Machine.Memory.Clear(pfn);
        InitAnonPage(pfn, anon, vma.LinearIndex(address));
        return InstallFreshAnonPage(ref slot, expected, pfn);
    }

    internal AnonVma AnonFor(Vma vma)
    {
        if (vma.Anon is { } anon) return anon;
        PageTableLock.Lock();
        try { return PrepareAnon(vma); }
        finally { PageTableLock.Unlock(); }
    }

    private void InitAnonPage(ulong pfn, AnonVma anon, ulong index)
    {
        Frames.Flags(pfn) = PageFlags.Anon | PageFlags.AnonExclusive | PageFlags.Lru | PageFlags.Dirty;
        Frames.Owner(pfn) = anon.Id;
        Frames.Index(pfn) = index;
    }

    /// <summary>
    /// Maps a freshly allocated anonymous page writable at <paramref name="slot"/> if the entry is
    /// still <paramref name="expected"/>; otherwise another fault won the race and the page goes back.
    /// </summary>
    private FaultResult InstallFreshAnonPage(ref ulong slot, ulong expected, ulong pfn)
    {
        PageTableLock.Lock();
        try
        {
            if (slot == expected)
            {
                Frames.MapCount(pfn) = 1;
                Volatile.Write(ref slot, Pte.Present(pfn, writable: true, dirty: true).Raw);
                Interlocked.Increment(ref _rssAnon);
                return FaultResult.Ok;
            }
        }
        finally { PageTableLock.Unlock(); }
        DiscardFresh(pfn);
        return FaultResult.Ok;
    }

    /// <summary>Returns a page allocated for a fault that lost a race (refcount 1, unmapped).</summary>
    private void DiscardFresh(ulong pfn)
    {
        Frames.RefCount(pfn) = 1;
        Frames.MapCount(pfn) = 0;
        Machine.PutPage(pfn);
    }

    /// <summary>
    /// do_read_fault / do_shared_fault / do_cow_fault for file and shmem mappings. finish_fault
    /// builds the entry from vma->vm_page_prot, made writable and dirty only for a write fault: a
    /// read fault in a private mapping is read-only (a later write copies the page), in a shared
    /// one it is writable exactly when the protection is (shmem yes; a regular file wants write
    /// notifications, so its first write faults again to dirty the page).
    /// </summary>
    private FaultResult FileFault(Vma vma, ulong address, bool write, ref ulong slot, ulong expected)
    {
        var file = vma.File!;
        ulong index = vma.LinearIndex(address);
        if ((index << Page.Shift) >= file.Size) return FaultResult.SigBus;
        if (!file.TryGetFolio(index, out ulong cached)) return FaultResult.Oom;
        if (vma.IsShared || !write)
        {
            PageTableLock.Lock();
            try
            {
                if (slot != expected) return FaultResult.Ok;
                Machine.GetPage(cached);
                Interlocked.Increment(ref Frames.MapCount(cached));   // a page-cache page: other mms map it under their own PTLs
                bool writable = vma.IsShared && (write || vma.PageProtWritable);
                if (write) Frames.SetFlags(cached, PageFlags.Dirty);
                Volatile.Write(ref slot, Pte.Present(cached, writable, dirty: write).Raw);
                Interlocked.Increment(ref _rssFile);
                return FaultResult.Ok;
            }
            finally { PageTableLock.Unlock(); }
        }
        // do_cow_fault: a private write gets an anonymous copy of the file page.
        var anon = AnonFor(vma);
        if (!Machine.Allocator.TryAllocate(0, out ulong pfn)) return FaultResult.Oom;
        Machine.CopyPages(pfn, cached, 0);
        InitAnonPage(pfn, anon, index);
        return InstallFreshAnonPage(ref slot, expected, pfn);
    }

    /// <summary>
    /// do_wp_page: a write to a present read-only entry. Shared mappings are made writable;
    /// an anonymous page only this mapping uses is reused; anything else (zero page, page shared
    /// after fork, page-cache page in a private mapping) is copied, raising CLEAR on the page
    /// (reference D, "COW write fault").
    /// </summary>
    private FaultResult WriteProtectFault(Vma vma, ulong address, ref ulong slot, Pte pte)
    {
        ulong pfn = pte.Pfn;
        bool zero = IsZeroPfn(pfn);
        if (vma.IsShared && !zero)
        {
            PageTableLock.Lock();
            try
            {
                if (slot == pte.Raw)
                {
                    Frames.SetFlags(Frames.FolioHead(pfn), PageFlags.Dirty);
                    Volatile.Write(ref slot, pte.Raw | Pte.WriteBit | Pte.DirtyBit);
                }
            }
            finally { PageTableLock.Unlock(); }
            return FaultResult.Ok;
        }
        // do_wp_page runs under the PTL with the entry re-checked (pte_same): only then does the
        // entry's reference keep the page alive, so its struct page is read only then — a
        // device-coherent page may otherwise have been migrated away, freed and its memory
        // unplugged since the lockless read (issue 8, PAGE-R02). The reuse decision is made there
        // too. For a copy, a reference is taken before the PTL is dropped (folio_get: the mapped
        // folio is not frozen), which keeps the page — and a THP split, whose freeze it makes
        // fail — away while the page is copied.
        ulong head = pfn;
        ulong referenced = ulong.MaxValue;
        if (!zero)
        {
            PageTableLock.Lock();
            try
            {
                if (Volatile.Read(ref slot) != pte.Raw) return FaultResult.Ok;
                head = Frames.FolioHead(pfn);
                if ((Frames.Flags(head) & PageFlags.Anon) != 0 && CanReuseAnon(pfn, head))
                {
                    Frames.SetFlags(pfn, PageFlags.AnonExclusive);
                    Volatile.Write(ref slot, pte.Raw | Pte.WriteBit | Pte.DirtyBit);
                    return FaultResult.Ok;
                }
                Machine.GetPage(head);
                referenced = head;
            }
            finally { PageTableLock.Unlock(); }
        }
        try { return WpPageCopy(vma, address, ref slot, pte, zero, head); }
        finally
        {
            if (referenced != ulong.MaxValue) Machine.PutPage(referenced);
        }
    }

    private FaultResult WpPageCopy(Vma vma, ulong address, ref ulong slot, Pte pte, bool zero, ulong head)
    {
        ulong pfn = pte.Pfn;
        var anon = AnonFor(vma);
        if (!Machine.Allocator.TryAllocate(0, out ulong copy)) return FaultResult.Oom;
        if (zero) Machine.Memory.Clear(copy);
        else Machine.CopyPages(copy, pfn, 0);
        InitAnonPage(copy, anon, vma.LinearIndex(address));
        var hook = InvalidateStart(NotifyEvent.Clear, address, address + Page.Size);
        bool installed = false;
        PageTableLock.Lock();
        try
        {
            if (slot == pte.Raw)
            {
                Frames.MapCount(copy) = 1;
                Volatile.Write(ref slot, Pte.Present(copy, writable: true, dirty: true).Raw);
                installed = true;
            }
        }
        finally { PageTableLock.Unlock(); }
        // ptep_clear_flush: no CPU keeps using the old page through a stale translation once its
        // reference may be the last one dropped below.
        if (installed && !zero) Tlb.Flush();
        InvalidateEnd(hook, NotifyEvent.Clear, address, address + Page.Size);
        if (!installed) { DiscardFresh(copy); return FaultResult.Ok; }
        Interlocked.Increment(ref _rssAnon);
        if (!zero)
        {
            Interlocked.Decrement(ref Frames.MapCount(pfn));
            AccountRss(head, -1);
            Machine.PutPage(head);
        }
        return FaultResult.Ok;
    }

    /// <summary>
    /// do_wp_page's reuse test: a PageAnonExclusive page is this mm's alone and is reused whatever
    /// references it has — a pin included (GUP only pins exclusive pages, and fork copies pinned
    /// pages instead of sharing them, so a write never moves a process away from its pinned page).
    /// Otherwise wp_can_reuse_anon_folio: only this mapping holds the page (no fork sharer, no
    /// pin, no other reference).
    /// </summary>
    private bool CanReuseAnon(ulong pfn, ulong head)
    {
        if ((Frames.Flags(pfn) & PageFlags.AnonExclusive) != 0) return true;
        if (Frames.PinCount(head) != 0) return false;
        if (head != pfn || Frames.Order(head) != 0)
            return (Frames.Flags(pfn) & PageFlags.AnonExclusive) != 0 && Frames.MapCount(pfn) == 1;
        return Volatile.Read(ref Frames.RefCount(head)) == 1;
    }

    private bool TryReuseHugePmd(ref ulong slot, Pte leaf)
    {
        ulong head = leaf.Pfn;
        if (IsZeroPfn(head)) return false;
        PageTableLock.Lock();
        try
        {
            // do_huge_pmd_wp_page: an exclusive folio is reused (pinned or not); a shared one only
            // when nothing but this mapping references it.
            if (slot != leaf.Raw) return false;
            if ((Frames.Flags(head) & PageFlags.AnonExclusive) == 0
                && (Frames.PinCount(head) != 0 || Volatile.Read(ref Frames.RefCount(head)) != 1)) return false;
            Frames.SetFlags(head, PageFlags.AnonExclusive);
            Volatile.Write(ref slot, leaf.Raw | Pte.WriteBit | Pte.DirtyBit);
            return true;
        }
        finally { PageTableLock.Unlock(); }
    }

    /// <summary>
    /// do_huge_pmd_anonymous_page: inside a MADV_HUGEPAGE region a read maps the huge zero page,
    /// a write a fresh 2 MiB folio; when no 2 MiB frame is free the fault falls back to base pages.
    /// </summary>
    private FaultResult HugeAnonFault(Vma vma, ulong pmdStart, bool write, ref ulong slot)
    {
        if (!write)
        {
            ulong hz = Pte.Present(Machine.HugeZeroPfn, writable: false, huge: true, special: true).Raw;
            PageTableLock.Lock();
            try { if (slot == 0) Volatile.Write(ref slot, hz); }
            finally { PageTableLock.Unlock(); }
            return FaultResult.Ok;
        }
        var anon = AnonFor(vma);
        if (!Machine.Allocator.TryAllocate(Page.PmdOrder, out ulong head)) return FaultResult.Ok;   // VM_FAULT_FALLBACK
        Machine.Memory.Clear(head, Page.PmdOrder);
        InitLargeAnon(head, anon, vma.LinearIndex(pmdStart));
        PageTableLock.Lock();
        try
        {
            if (slot == 0)
            {
                Frames.EntireMapCount(head) = 1;
                Volatile.Write(ref slot, Pte.Present(head, writable: true, dirty: true, huge: true).Raw);
                Interlocked.Add(ref _rssAnon, Page.PmdPages);
                return FaultResult.Ok;
            }
        }
        finally { PageTableLock.Unlock(); }
        Frames.RefCount(head) = 0;
        FreeLargeFresh(head);
        return FaultResult.Ok;
    }

    internal void InitLargeAnon(ulong head, AnonVma anon, ulong index)
    {
        for (ulong i = 0; i < Page.PmdPages; i++)
        {
            Frames.Flags(head + i) = (i == 0 ? PageFlags.Head | PageFlags.Lru | PageFlags.Dirty : PageFlags.Tail) | PageFlags.Anon | PageFlags.AnonExclusive;
            Frames.Owner(head + i) = anon.Id;
            Frames.Index(head + i) = index + i;
        }
    }

    private void FreeLargeFresh(ulong head)
    {
        Frames.RefCount(head) = 1;
        Machine.PutPage(head);
    }

    /// <summary>
    /// hugetlb_fault: 2 MiB pages from the machine's pool, COW at 2 MiB for private mappings.
    /// hugetlb_no_page maps a shared page writable when the VMA is (hugetlbfs has no write
    /// notifications) and a private one read-only — a private write fault then goes straight
    /// through hugetlb_wp, which reuses the new exclusive page. hugetlb_wp reuses any anonymous
    /// page mapped only here (pinned or not) and copies a page shared after fork.
    /// </summary>
    private FaultResult HugeTlbFault(Vma vma, ulong pmdStart, bool write, ref ulong slot)
    {
        ulong raw = Volatile.Read(ref slot);
        bool vmWrite = (vma.Flags & VmFlags.Write) != 0;
        if (raw == 0)
        {
            ulong head;
            bool shared = vma.IsShared;
            if (shared)
            {
                var file = vma.File!;
                ulong folio = file.FolioIndexOf(vma.LinearIndex(pmdStart));
                if (folio >= file.FolioCount) return FaultResult.SigBus;
                if (!file.TryGetFolio(folio, out head)) return FaultResult.SigBus;
                Machine.GetPage(head);
            }
            else
            {
                if (!Machine.TryAllocateHugeTlb(out head)) return FaultResult.SigBus;
                Machine.Memory.Clear(head, Page.PmdOrder);
                var anon = AnonFor(vma);
                Frames.Flags(head) |= PageFlags.Anon | PageFlags.AnonExclusive;
                Frames.Owner(head) = anon.Id;
                Frames.Index(head) = vma.LinearIndex(pmdStart);
            }
            PageTableLock.Lock();
            try
            {
                if (slot == 0)
                {
                    Interlocked.Increment(ref Frames.EntireMapCount(head));   // a shared hugetlb folio is mapped by other mms too
                    bool writable = vmWrite && (shared || write);
                    Volatile.Write(ref slot, Pte.Present(head, writable, dirty: writable, huge: true).Raw);
                    AccountRss(head, Page.PmdPages);
                    return FaultResult.Ok;
                }
            }
            finally { PageTableLock.Unlock(); }
            Machine.PutPage(head);
            return FaultResult.Ok;
        }
        var leaf = new Pte(raw);
        if (!write || leaf.IsWritable) return FaultResult.Ok;
        ulong old = leaf.Pfn;
        if (vma.IsShared || ((Frames.Flags(old) & PageFlags.Anon) != 0 && Volatile.Read(ref Frames.EntireMapCount(old)) == 1))
        {
            if (!vma.IsShared) Frames.SetFlags(old, PageFlags.AnonExclusive);
            PageTableLock.Lock();
            try { if (slot == raw) Volatile.Write(ref slot, raw | Pte.WriteBit | Pte.DirtyBit); }
            finally { PageTableLock.Unlock(); }
            return FaultResult.Ok;
        }
        // hugetlb_wp: copy the whole 2 MiB page.
        if (!Machine.TryAllocateHugeTlb(out ulong copy)) return FaultResult.SigBus;
        Machine.CopyPages(copy, old, Page.PmdOrder);
        var lineage = AnonFor(vma);
        Frames.Flags(copy) |= PageFlags.Anon | PageFlags.AnonExclusive;
        Frames.Owner(copy) = lineage.Id;
        Frames.Index(copy) = vma.LinearIndex(pmdStart);
        var hook = InvalidateStart(NotifyEvent.Clear, pmdStart, pmdStart + Page.PmdSize);
        bool installed = false;
        PageTableLock.Lock();
        try
        {
            if (slot == raw)
            {
                Frames.EntireMapCount(copy) = 1;
                Volatile.Write(ref slot, Pte.Present(copy, writable: true, dirty: true, huge: true).Raw);
                installed = true;
            }
        }
        finally { PageTableLock.Unlock(); }
        InvalidateEnd(hook, NotifyEvent.Clear, pmdStart, pmdStart + Page.PmdSize);
        if (!installed) { Machine.PutPage(copy); return FaultResult.Ok; }
        Interlocked.Decrement(ref Frames.EntireMapCount(old));
        Machine.PutPage(old);
        return FaultResult.Ok;
    }
}
