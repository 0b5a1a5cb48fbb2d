using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.TestHmm;

/// <summary>
/// The MIGRATE_TO_DEV / MIGRATE_TO_SYS walk, kept: the generated one walks 2 MiB-aligned pieces,
/// reports EFAULT for a missing VMA and ENOMEM on a failed allocation; test_hmm walks ≤ 512-page
/// pieces from the address (no VMA or no VM_READ → EINVAL), counts a 2 MiB entry once and ignores
/// what dmirror_devmem_fault_alloc_and_copy returns. Device pages hold the data (no BACKING_PAGE).
/// </summary>
internal sealed partial class DmirrorFile
{
    /// <summary>
    /// The mmap read lock is held across setup → allocate and copy → pages → finalize (MIG-R01,
    /// MIG-R02). To system memory, the device mappings go before migrate_vma_pages (own MIGRATE
    /// events are filtered, HMM-R19) and <paramref name="cpages"/> counts the entries left VALID
    /// and MIGRATE (a 2 MiB entry once); to the device, the migrated entries are mapped after it.
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
                AllocateAndCopy(src, dst, n, toDevice);
                if (!toDevice) UpdateTable(args, n, map: false);
                MigrateVma.Pages(args);
                if (toDevice) UpdateTable(args, n, map: true);
                else for (int i = 0; i < n; i++) if ((src[i] & (MigratePfn.Valid | MigratePfn.Migrate)) == (MigratePfn.Valid | MigratePfn.Migrate)) cpages++;
                MigrateVma.Finalize(args);
            }
        }
        finally { mm.MmapLock.ReadUnlock(); }
        return e;
    }

    /// <summary>
    /// dmirror_migrate_alloc_and_copy (to the device: holes and the zero page cleared) and
    /// dmirror_devmem_fault_alloc_and_copy (to system memory: this device's pages only): a
    /// destination per collected entry, a 2 MiB folio for a COMPOUND one, dst carrying the
    /// source's WRITE bit. When the allocation fails (FAIL_ALLOC, or no memory) a 2 MiB entry
    /// falls back to 512 base pages; a base page is skipped on the way to the device and ends
    /// the copy on the way back (the rest stays on the device).
    /// </summary>
    private void AllocateAndCopy(ulong[] src, ulong[] dst, int n, bool toDevice)
    {
        for (int i = 0; i < n;)
        {
            ulong s = src[i];
            ulong? spage = MigratePfn.ToPfn(s);
            if ((s & MigratePfn.Migrate) == 0 || (!toDevice && (spage is not { } sp || Memory.DeviceChunkOf(sp) == null))) { i++; continue; }
            int order = (s & MigratePfn.Compound) != 0 ? Page.PmdOrder : 0;
            ulong write = s & MigratePfn.Write;
            if (AllocatePage(order, toDevice, out ulong page))
            {
                CopyIn(spage, page, order);
                dst[i] = MigratePfn.FromPfn(page) | write | (order != 0 ? MigratePfn.Compound : 0);
                i += 1 << order;
                continue;
            }
            if (order == 0 && toDevice) { i++; continue; }
            if (order == 0) return;
            int first = i, stop = Math.Min(n, i + Page.PmdPages);
            for (; i < stop && Allocate(0, toDevice, out ulong d); i++)
            {
                CopyIn(spage is { } head ? head + (ulong)(i - first) : null, d, 0);
                dst[i] = MigratePfn.FromPfn(d) | write;
            }
            if (i < stop && !toDevice) return;
            i = stop;
        }
    }

    private void CopyIn(ulong? spage, ulong dpage, int order)
    {
        if (spage is { } s) Device.Copy.Copy([new PageCopy(s, dpage, order)]);
        else Device.Copy.Clear([dpage], order);
    }

    /// <summary>
    /// Under U: the hardware table drops the range; then dmirror_migrate_finalize_and_map maps every
    /// migrated entry's device page(s), WRITE-tagged when dst carries MIGRATE_PFN_WRITE (between
    /// migrate_vma_pages and finalize, MIG-R06), or the copy's xa_erase drops every entry given a
    /// system page, so the device stops using the old pages.
    /// </summary>
    private void UpdateTable(MigrateVma args, int n, bool map)
    {
        var dst = args.Dst;
        ulong vpn = args.Start >> Page.Shift;
        _mutex.Lock();
        try
        {
            Device.Invalidate(Instance, args.Start, args.End);
            for (int i = 0; i < n; i++)
            {
                if (!MigratePfn.IsValid(dst[i]) || (args.Src[i] & MigratePfn.Migrate) == 0) continue;
                int nr = (dst[i] & MigratePfn.Compound) != 0 ? Math.Min(Page.PmdPages, n - i) : 1;
                int tag = (dst[i] & MigratePfn.Write) != 0 ? DevicePageTable.TagWrite : DevicePageTable.TagRead;
                ulong v = vpn + (ulong)i, dpage = dst[i] >> MigratePfn.Shift;
                if (!map) _pt.EraseRange(v, v + (ulong)nr - 1);
                else for (int k = 0; k < nr; k++) _pt.Store(v + (ulong)k, DevicePageTable.Make(dpage + (ulong)k, tag));
                i += nr - 1;
            }
        }
        finally { _mutex.Unlock(); }
    }
}
