using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.TestHmm;

public sealed partial class Dmirror
{
    /// <summary>
    /// HMM_DMIRROR_MIGRATE_TO_DEV: under the mmap read lock, per ≤ 512-page piece inside one VMA
    /// (no VMA or no VM_READ → EINVAL): migrate_vma_setup (SELECT_SYSTEM | SELECT_COMPOUND,
    /// owner = this device), allocate device pages and copy (clear holes), migrate_vma_pages, map
    /// the migrated entries (their backing pages) in the device page table, migrate_vma_finalize.
    /// Then reads the whole range back from the device page table into <paramref name="mirror"/>:
    /// any page that did not end up mapped → ENOENT. cpages = pages read back.
    /// </summary>
    public Errno MigrateToDevice(ulong addr, int npages, Span<byte> mirror, out DmirrorCounters counters)
    {
        counters = default;
        var e = CheckCommand(addr, npages, out ulong end);
        if (e != Errno.Ok) return e;
        if (!_mm.TryGet()) return Errno.EINVAL;
        int moved = 0;
        try { e = MigrateChunks(addr, end, MigrateSelect.System | MigrateSelect.Compound, toDevice: true, ref moved); }
        finally { _mm.Put(); }
        if (e != Errno.Ok) return e;
        if ((ulong)mirror.Length < end - addr) return Errno.EFAULT;
        int cpages = 0;
        _mutex.Lock();
        try { e = DoRead(addr, addr, end, mirror, ref cpages); }
        finally { _mutex.Unlock(); }
        if (e == Errno.Ok) counters = new DmirrorCounters(cpages, 0);
        return e;
    }

    /// <summary>
    /// HMM_DMIRROR_MIGRATE_TO_SYS: per ≤ 512-page piece inside one VMA (EINVAL as for
    /// MigrateToDevice): setup selecting this device's private (or coherent) pages with
    /// SELECT_COMPOUND, allocate system pages (a 2 MiB folio for a 2 MiB source) and copy, erasing
    /// the device mappings, migrate_vma_pages, finalize. cpages counts src entries left VALID and
    /// MIGRATE — a 2 MiB entry counts once, as test_hmm counts it. An allocation failure is not an
    /// error here: as dmirror_migrate_to_system ignores what dmirror_devmem_fault_alloc_and_copy
    /// returns, the entries without a destination simply stay on the device (a later CPU fault
    /// brings them back) and the ioctl returns 0 with fewer cpages.
    /// </summary>
    public Errno MigrateToSystem(ulong addr, int npages, out DmirrorCounters counters)
    {
        counters = default;
        var e = CheckCommand(addr, npages, out ulong end);
        if (e != Errno.Ok) return e;
        if (!_mm.TryGet()) return Errno.EINVAL;
        int cpages = 0;
        try { e = MigrateChunks(addr, end, Device.SelectDevice | MigrateSelect.Compound, toDevice: false, ref cpages); }
        finally { _mm.Put(); }
        if (e == Errno.Ok) counters = new DmirrorCounters(cpages, 0);
        return e;
    }

    /// <summary>
    /// The walk both migrate ioctls share: per piece of at most 512 pages inside one VMA (no VMA or
    /// an unreadable one → EINVAL), with the mmap read lock held across setup → allocate and copy
    /// → pages → finalize (MIG-R01, MIG-R02). To the device, the migrated entries are then mapped
    /// into the device page table; to system memory, the entries the allocation failed for are
    /// left to migrate_vma_pages to skip (no destination) and the walk goes on, and
    /// <paramref name="cpages"/> counts the entries left VALID and MIGRATE (a 2 MiB entry once, as
    /// test_hmm counts it).
    /// </summary>
    private Errno MigrateChunks(ulong addr, ulong end, MigrateSelect flags, bool toDevice, ref int cpages)
    {
        var src = new ulong[Page.PmdPages];
        var dst = new ulong[Page.PmdPages];
        Errno e = Errno.Ok;
        using var args = new MigrateVma { Src = src, Dst = dst, PgmapOwner = Device, Flags = flags };
        _mm.MmapLock.ReadLock();
        try
        {
            for (ulong a = addr, next; a < end; a = next)
            {
                var vma = _mm.FindVma(a);
                if (vma == null || a < vma.Start || (vma.Flags & VmFlags.Read) == 0) { e = Errno.EINVAL; break; }
                next = Math.Min(end, a + ((ulong)Page.PmdPages << Page.Shift));
                if (next > vma.End) next = vma.End;
                args.Vma = vma;
                args.Start = a;
                args.End = next;
                Array.Clear(dst);
                e = MigrateVma.Setup(args);
                if (e != Errno.Ok) break;
                int n = args.EntryCount;
                if (toDevice)
                {
                    AllocAndCopyToDevice(args, n);
                    MigrateVma.Pages(args);
                    FinalizeAndMap(args, n);
                }
                else
                {
                    _ = AllocAndCopyToSystem(args, n);   // VM_FAULT_OOM is the fault path's business only
                    MigrateVma.Pages(args);
                    for (int i = 0; i < n; i++)
                        if ((src[i] & (MigratePfn.Valid | MigratePfn.Migrate)) == (MigratePfn.Valid | MigratePfn.Migrate)) cpages++;
                }
                MigrateVma.Finalize(args);
            }
        }
        finally { _mm.MmapLock.ReadUnlock(); }
        return e;
    }

    /// <summary>
    /// dmirror_migrate_alloc_and_copy: for each collected entry a device page (a 2 MiB device
    /// folio for a COMPOUND entry) from <see cref="DmirrorDevice"/>, the source copied into its
    /// backing page (cleared for a hole or the zero page), dst = the device page with the
    /// source's WRITE bit. When the allocation fails (FAIL_ALLOC, or no memory): a base page is
    /// skipped; a 2 MiB entry falls back to 512 single device pages.
    /// </summary>
    private void AllocAndCopyToDevice(MigrateVma args, int n)
    {
        var src = args.Src;
        var dst = args.Dst;
        var copy = Device.Copy;
        for (int i = 0; i < n;)
        {
            ulong s = src[i];
            if ((s & MigratePfn.Migrate) == 0) { i++; continue; }
            bool large = (s & MigratePfn.Compound) != 0;
            ulong write = s & MigratePfn.Write;
            ulong? spage = MigratePfn.ToPfn(s);
            ulong dpage = 0;
            bool ok = !TakeFailAlloc() && Device.AllocPage(this, large, out dpage);
            if (!ok)
            {
                if (!large) { i++; continue; }
                int first = i, stop = Math.Min(n, i + Page.PmdPages);
                for (; i < stop; i++)
                {
                    if (!Device.AllocPage(this, large: false, out ulong d)) break;
                    CopyIn(copy, spage is { } sp ? sp + (ulong)(i - first) : null, Device.BackingOf(d), 0);
                    dst[i] = MigratePfn.FromPfn(d) | write;
                }
                i = stop;
                continue;
            }
            int order = large ? Page.PmdOrder : 0;
            CopyIn(copy, spage, Device.BackingOf(dpage), order);
            dst[i] = MigratePfn.FromPfn(dpage) | write | (large ? MigratePfn.Compound : 0);
            i += large ? Page.PmdPages : 1;
        }
    }

    private static void CopyIn(CopyEngine copy, ulong? spage, ulong rpage, int order)
    {
        if (spage is { } s) copy.Copy([new PageCopy(s, rpage, order)]);
        else copy.Clear([rpage], order);
    }

    /// <summary>
    /// dmirror_migrate_finalize_and_map: under U, every entry still MIGRATE with a destination
    /// maps its backing page(s) (the device page itself for coherent memory), WRITE-tagged when
    /// dst carries MIGRATE_PFN_WRITE. Between migrate_vma_pages and finalize (MIG-R06).
    /// </summary>
    [Excludes(nameof(_mutex))]
    private void FinalizeAndMap(MigrateVma args, int n)
    {
        var src = args.Src;
        var dst = args.Dst;
        ulong vpn = args.Start >> Page.Shift;
        _mutex.Lock();
        try
        {
            for (int i = 0; i < n; i++)
            {
                if ((src[i] & MigratePfn.Migrate) == 0 || MigratePfn.ToPfn(dst[i]) is not { } dpage) continue;
                int nr = (dst[i] & MigratePfn.Compound) != 0 ? Page.PmdPages : 1;
                ulong rpage = Device.BackingOf(dpage);
                int tag = (dst[i] & MigratePfn.Write) != 0 ? DevicePageTable.TagWrite : DevicePageTable.TagRead;
                for (int k = 0; k < nr && i + k < n; k++)
                    _pt.Store(vpn + (ulong)(i + k), DevicePageTable.Make(rpage + (ulong)k, tag));
                i += nr - 1;
            }
        }
        finally { _mutex.Unlock(); }
    }

    /// <summary>
    /// dmirror_devmem_fault_alloc_and_copy (MIGRATE_TO_SYS and migrate_to_ram): for each
    /// collected device page a system page (a 2 MiB folio when the device folio is 2 MiB), the
    /// backing data copied into it, and this mirror's device mappings of those pages erased —
    /// the MIGRATE events carrying this device as owner were skipped (HMM-R19). FAIL_ALLOC
    /// makes one allocation fail: a base page then ends the copy with ENOMEM (VM_FAULT_OOM for
    /// migrate_to_ram; MIGRATE_TO_SYS ignores it and leaves the rest on the device), a 2 MiB one
    /// falls back to 512 base pages. Allocations happen outside U (HMM-R09); the
    /// erasure takes U once, before migrate_vma_pages.
    /// </summary>
    [Excludes(nameof(_mutex))]
    internal Errno AllocAndCopyToSystem(MigrateVma args, int n)
    {
        var src = args.Src;
        var dst = args.Dst;
        var copy = Device.Copy;
        Errno result = Errno.Ok;
        int handled = 0;
        for (int i = 0; i < n;)
        {
            ulong s = src[i];
            if ((s & MigratePfn.Migrate) == 0 || MigratePfn.ToPfn(s) is not { } spfn) { i++; handled = i; continue; }
            var pgmap = Hmm.Runtime.DeviceMemory.DevPagemap.Of(Device.Machine, spfn);
            if (pgmap == null || pgmap.Owner != Device) { i++; handled = i; continue; }   // WARN: not our device page
            int order = (s & MigratePfn.Compound) != 0 ? pgmap.FolioOrder(spfn) : 0;
            ulong spage = Device.BackingOf(spfn);
            ulong write = s & MigratePfn.Write;
            ulong dpage = 0;
            bool ok = !TakeFailAlloc() && SystemPages.TryAllocateLocked(Device.Machine, order, out dpage);
            if (!ok && order == 0) { result = Errno.ENOMEM; break; }
            if (ok)
            {
                copy.Copy([new PageCopy(spage, dpage, order)]);
                dst[i] = MigratePfn.FromPfn(dpage) | write | (order != 0 ? MigratePfn.Compound : 0);
                i += 1 << order;
                handled = i;
                continue;
            }
            // Try with smaller pages when the 2 MiB allocation failed.
            int first = i, stop = Math.Min(n, i + (1 << order));
            for (; i < stop; i++)
            {
                if (!SystemPages.TryAllocateLocked(Device.Machine, 0, out ulong d)) { result = Errno.ENOMEM; break; }
                copy.Copy([new PageCopy(spage + (ulong)(i - first), d, 0)]);
                dst[i] = MigratePfn.FromPfn(d) | write;
            }
            handled = i;
            if (result != Errno.Ok) break;
        }
        // xa_erase of every page handled, so the device stops using the old pages.
        ulong vpn = args.Start >> Page.Shift;
        _mutex.Lock();
        try
        {
            for (int i = 0; i < handled; i++)
                if (MigratePfn.IsValid(dst[i]))
                {
                    int nr = (dst[i] & MigratePfn.Compound) != 0 ? Page.PmdPages : 1;
                    for (int k = 0; k < nr; k++) _pt.Erase(vpn + (ulong)(i + k));
                    i += nr - 1;
                }
        }
        finally { _mutex.Unlock(); }
        return result;
    }
}
