using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.TestHmm;

/// <summary>
/// The MIGRATE_TO_DEV / MIGRATE_TO_SYS walk. The generated MigrateToDevice/MigrateToSystem walk
/// 2 MiB-aligned pieces, report EFAULT for a missing VMA and ENOMEM when an allocation fails;
/// test_hmm walks ≤ 512-page pieces from the address (no VMA or no VM_READ → EINVAL), counts a
/// 2 MiB entry once and ignores what dmirror_devmem_fault_alloc_and_copy returns, so the ioctls
/// keep their own walk. Device pages hold the data themselves (no BACKING_PAGE).
/// </summary>
internal sealed partial class DmirrorFile
{
    /// <summary>
    /// Per piece of at most 512 pages inside one VMA, with the mmap read lock held across setup →
    /// allocate and copy → pages → finalize (MIG-R01, MIG-R02). To the device, the migrated entries
    /// are then mapped; to system memory, entries the allocation failed for stay on the device and
    /// <paramref name="cpages"/> counts the entries left VALID and MIGRATE (a 2 MiB entry once).
    /// </summary>
    [Excludes(nameof(_mutex))]
    public Errno MigrateRange(ulong addr, ulong end, bool toDevice, ref int cpages)
    {
        var mm = Process.Mm;
        var src = new ulong[Page.PmdPages];
        var dst = new ulong[Page.PmdPages];
        var select = Memory.DeviceKind == DevicePageKind.Private ? MigrateSelect.DevicePrivate : MigrateSelect.DeviceCoherent;
        Errno e = Errno.Ok;
        using var args = new MigrateVma { Src = src, Dst = dst, PgmapOwner = PgmapOwner, Flags = (toDevice ? MigrateSelect.System : select) | MigrateSelect.Compound };
        mm.MmapLock.ReadLock();
        try
        {
            for (ulong a = addr, next; a < end; a = next)
            {
                var vma = mm.FindVma(a);
                if (vma == null || a < vma.Start || (vma.Flags & VmFlags.Read) == 0) { e = Errno.EINVAL; break; }
                next = Math.Min(Math.Min(end, a + ((ulong)Page.PmdPages << Page.Shift)), vma.End);
                args.Vma = vma;
                args.Start = a;
                args.End = next;
                Array.Clear(dst);
                e = MigrateVma.Setup(args);
                if (e != Errno.Ok) break;
                int n = args.EntryCount;
                if (toDevice) CopyToDevice(src, dst, n);
                else CopyToSystem(args, n);
                MigrateVma.Pages(args);
                if (toDevice) MapMigrated(args, n);
                else
                {
                    for (int i = 0; i < n; i++)
                        if ((src[i] & (MigratePfn.Valid | MigratePfn.Migrate)) == (MigratePfn.Valid | MigratePfn.Migrate)) cpages++;
                }
                MigrateVma.Finalize(args);
            }
        }
        finally { mm.MmapLock.ReadUnlock(); }
        return e;
    }

    /// <summary>
    /// dmirror_migrate_alloc_and_copy: for each collected entry a device page (a 2 MiB device folio
    /// for a COMPOUND entry), the source copied into it (cleared for a hole or the zero page), dst =
    /// the device page with the source's WRITE bit. When the allocation fails (FAIL_ALLOC, or no
    /// memory): a base page is skipped; a 2 MiB entry falls back to 512 single device pages.
    /// </summary>
    private void CopyToDevice(ulong[] src, ulong[] dst, int n)
    {
        for (int i = 0; i < n;)
        {
            ulong s = src[i];
            if ((s & MigratePfn.Migrate) == 0) { i++; continue; }
            bool large = (s & MigratePfn.Compound) != 0;
            ulong write = s & MigratePfn.Write;
            ulong? spage = MigratePfn.ToPfn(s);
            int order = large ? Page.PmdOrder : 0;
            if (!TakeFailAlloc() && AllocateDevicePage(order, out ulong dpage))
            {
                CopyIn(spage, dpage, order);
                dst[i] = MigratePfn.FromPfn(dpage) | write | (large ? MigratePfn.Compound : 0);
                i += 1 << order;
                continue;
            }
            if (!large) { i++; continue; }
            int first = i, stop = Math.Min(n, i + Page.PmdPages);
            for (; i < stop && AllocateDevicePage(0, out ulong d); i++)
            {
                CopyIn(spage is { } sp ? sp + (ulong)(i - first) : null, d, 0);
                dst[i] = MigratePfn.FromPfn(d) | write;
            }
            i = stop;
        }
    }

    private void CopyIn(ulong? spage, ulong dpage, int order)
    {
        if (spage is { } s) Device.Copy.Copy([new PageCopy(s, dpage, order)]);
        else Device.Copy.Clear([dpage], order);
    }

    /// <summary>
    /// dmirror_migrate_finalize_and_map: under U, every entry still MIGRATE with a destination maps
    /// its device page(s), WRITE-tagged when dst carries MIGRATE_PFN_WRITE; the device's hardware
    /// table drops the old pages. Between migrate_vma_pages and finalize (MIG-R06).
    /// </summary>
    private void MapMigrated(MigrateVma args, int n)
    {
        var src = args.Src;
        var dst = args.Dst;
        ulong vpn = args.Start >> Page.Shift;
        _mutex.Lock();
        try
        {
            Device.Invalidate(Instance, args.Start, args.End);
            for (int i = 0; i < n; i++)
            {
                if ((src[i] & MigratePfn.Migrate) == 0 || MigratePfn.ToPfn(dst[i]) is not { } dpage) continue;
                int nr = (dst[i] & MigratePfn.Compound) != 0 ? Page.PmdPages : 1;
                int tag = (dst[i] & MigratePfn.Write) != 0 ? DevicePageTable.TagWrite : DevicePageTable.TagRead;
                for (int k = 0; k < nr && i + k < n; k++)
                    _pt.Store(vpn + (ulong)(i + k), DevicePageTable.Make(dpage + (ulong)k, tag));
                i += nr - 1;
            }
        }
        finally { _mutex.Unlock(); }
    }

    /// <summary>
    /// dmirror_devmem_fault_alloc_and_copy for MIGRATE_TO_SYS: for each collected page of this
    /// device a system page (a 2 MiB folio for a 2 MiB device folio), the data copied into it, and
    /// the device mappings of the pages handled erased under U before migrate_vma_pages (own MIGRATE
    /// events are filtered, HMM-R19). FAIL_ALLOC fails one allocation: a base page ends the copy
    /// (the rest stays on the device), a 2 MiB one falls back to 512 base pages.
    /// </summary>
    private void CopyToSystem(MigrateVma args, int n)
    {
        var src = args.Src;
        var dst = args.Dst;
        int handled = 0;
        for (int i = 0; i < n;)
        {
            ulong s = src[i];
            if ((s & MigratePfn.Migrate) == 0 || MigratePfn.ToPfn(s) is not { } spfn || Memory.DeviceChunkOf(spfn) is not { } chunk) { handled = ++i; continue; }
            int order = (s & MigratePfn.Compound) != 0 ? chunk.FolioOrder(spfn) : 0;
            ulong write = s & MigratePfn.Write;
            if (!TakeFailAlloc() && SystemPages.TryAllocateLocked(Device.Machine, order, out ulong dpage))
            {
                Device.Copy.Copy([new PageCopy(spfn, dpage, order)]);
                dst[i] = MigratePfn.FromPfn(dpage) | write | (order != 0 ? MigratePfn.Compound : 0);
                handled = i += 1 << order;
                continue;
            }
            if (order == 0) break;
            int first = i, stop = Math.Min(n, i + (1 << order));
            for (; i < stop && SystemPages.TryAllocateLocked(Device.Machine, 0, out ulong d); i++)
            {
                Device.Copy.Copy([new PageCopy(spfn + (ulong)(i - first), d, 0)]);
                dst[i] = MigratePfn.FromPfn(d) | write;
            }
            handled = i;
            if (i < stop) break;
        }
        ulong vpn = args.Start >> Page.Shift;
        _mutex.Lock();
        try
        {
            Device.Invalidate(Instance, args.Start, args.End);
            for (int i = 0; i < handled; i++)
            {
                if (!MigratePfn.IsValid(dst[i])) continue;
                int nr = (dst[i] & MigratePfn.Compound) != 0 ? Page.PmdPages : 1;
                _pt.EraseRange(vpn + (ulong)i, vpn + (ulong)(i + nr - 1));
                i += nr - 1;
            }
        }
        finally { _mutex.Unlock(); }
    }
}
