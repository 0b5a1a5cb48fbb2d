using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Tests.Support;

/// <summary>
/// A minimal device driver for runtime tests, written only against the public driver API: it owns
/// device memory (private or coherent) with a free list of 4 KiB pages and 2 MiB folios, migrates
/// ranges to and from it with migrate_vma, and answers CPU faults on its private pages
/// (migrate_to_ram). It keeps no device page table: the runtime's behaviour is what is tested.
/// </summary>
internal sealed class TestDevice : IDevPagemapOps, Hmm.Runtime.Pci.IDevicePrivatePeerPolicy
{
    private readonly Stack<ulong> _free = new();
    private readonly Stack<ulong> _freeLarge = new();
    private readonly ulong[] _src = new ulong[Page.PmdPages];
    private readonly ulong[] _dst = new ulong[Page.PmdPages];
    private readonly MigrateVma _migrate = new();

    public TestDevice(Machine machine, DevicePageKind kind, ulong bytes = 64UL << 20, string name = "testdev")
    {
        Machine = machine;
        Name = name;
        Copy = new CopyEngine(machine);
        var e = DevPagemap.Create(machine, kind, bytes, this, this, out var pgmap);
        if (e != Errno.Ok) throw new InvalidOperationException($"DevPagemap.Create: {e}");
        Pgmap = pgmap!;
        for (ulong pfn = Pgmap.FirstPfn + Pgmap.PageCount; pfn > Pgmap.FirstPfn;)
        {
            pfn -= Page.PmdPages;
            _freeLarge.Push(pfn);
        }
    }

    public Machine Machine { get; }
    public string Name { get; }
    public DevPagemap Pgmap { get; }
    public CopyEngine Copy { get; }
    public int Allocations { get; private set; }
    public int PageFrees { get; private set; }
    public int MigrateToRamCalls { get; private set; }
    public List<ulong> FreedPfns { get; } = new();

    /// <summary>The last migrate_to_ram call's vm_fault (address, vmf->page, write), or null.</summary>
    public (ulong Address, ulong Page, bool Write)? LastFault { get; private set; }

    /// <summary>A copy of the src words of the last migration chunk right after migrate_vma_setup.</summary>
    public ulong[] SrcAfterSetup { get; private set; } = Array.Empty<ulong>();

    /// <summary>A copy of the src words of the last migration chunk right after migrate_vma_pages (MIGRATE = moved).</summary>
    public ulong[] SrcAfterPages { get; private set; } = Array.Empty<ulong>();

    /// <summary>Whether peers may reach this device's private memory in place (the exporter's p2p policy).</summary>
    public bool AllowPeers { get; set; }

    public bool AllowPeer(DevPagemap pgmap, Hmm.Runtime.Pci.PciFunction importer) => AllowPeers;

    /// <summary>Makes the next N device allocations fail (like dmirror's FAIL_ALLOC flag).</summary>
    public int FailAllocations { get; set; }

    /// <summary>Whether to ask for 2 MiB entries (MIGRATE_VMA_SELECT_COMPOUND).</summary>
    public bool Compound { get; set; }

    public int FreePages => _free.Count + (_freeLarge.Count * Page.PmdPages);

    public bool TryAllocate(int order, out ulong pfn)
    {
        pfn = 0;
        if (FailAllocations > 0) { FailAllocations--; return false; }
        if (order == Page.PmdOrder)
        {
            if (!_freeLarge.TryPop(out pfn)) return false;
        }
        else if (!_free.TryPop(out pfn))
        {
            if (!_freeLarge.TryPop(out ulong block)) return false;
            for (ulong i = Page.PmdPages - 1; i > 0; i--) _free.Push(block + i);
            pfn = block;
        }
        Pgmap.InitPage(pfn, order);
        Allocations++;
        return true;
    }

    /// <summary>Device folios split into base pages (folio_split).</summary>
    public int FolioSplits { get; private set; }

    /// <summary>folio_split: from now on the folio's 512 pages are freed one by one, as 512 allocations.</summary>
    public void FolioSplit(DevPagemap pgmap, ulong head)
    {
        FolioSplits++;
        Allocations += Page.PmdPages - 1;
    }

    public void PageFree(DevPagemap pgmap, ulong pfn)
    {
        PageFrees++;
        FreedPfns.Add(pfn);
        if (pgmap.IsRemoving) return;
        if (pgmap.FolioOrder(pfn) == Page.PmdOrder) _freeLarge.Push(pfn);
        else _free.Push(pfn);
    }

    /// <summary>Migrates [addr, addr + npages pages) of <paramref name="p"/> to this device; returns pages moved.</summary>
    public long MigrateToDevice(Process p, ulong addr, int npages)
    {
        long moved = 0;
        p.Mm.MmapLock.ReadLock();
        try
        {
            for (int done = 0; done < npages;)
            {
                int n = Math.Min(npages - done, Page.PmdPages);
                ulong start = addr + ((ulong)done << Page.Shift);
                var vma = p.Mm.FindVma(start) ?? throw new InvalidOperationException("no VMA");
                var args = Prepare(vma, start, n, MigrateSelect.System | (Compound ? MigrateSelect.Compound : 0), null);
                var e = MigrateVma.Setup(args);
                if (e != Errno.Ok) throw new ErrnoException(e, "migrate_vma_setup");
                SrcAfterSetup = _src.AsSpan(0, n).ToArray();
                for (int i = 0; i < n; i++)
                {
                    ulong s = _src[i];
                    if ((s & MigratePfn.Migrate) == 0) continue;
                    bool large = (s & MigratePfn.Compound) != 0;
                    if (large && TryAllocate(Page.PmdOrder, out ulong big))
                    {
                        CopyIn(s, big, Page.PmdOrder);
                        _dst[i] = MigratePfn.FromPfn(big) | MigratePfn.Compound;
                        i += Page.PmdPages - 1;
                        continue;
                    }
                    int count = large ? Page.PmdPages : 1;
                    for (int k = 0; k < count; k++)
                    {
                        if (!TryAllocate(0, out ulong page)) break;
                        ulong sub = MigratePfn.IsValid(s) ? MigratePfn.FromPfn((s >> MigratePfn.Shift) + (ulong)k) : 0;
                        CopyIn(sub, page, 0);
                        _dst[i + k] = MigratePfn.FromPfn(page);
                    }
                    if (large) i += Page.PmdPages - 1;
                }
                MigrateVma.Pages(args);
                SrcAfterPages = _src.AsSpan(0, n).ToArray();
                for (int i = 0; i < n; i++) if ((_src[i] & MigratePfn.Migrate) != 0) moved += (_src[i] & MigratePfn.Compound) != 0 ? Page.PmdPages : 1;
                MigrateVma.Finalize(args);
                done += n;
            }
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        return moved;
    }

    /// <summary>Migrates this device's pages in [addr, +npages) of <paramref name="p"/> back to system memory; returns pages moved.</summary>
    public long MigrateToSystem(Process p, ulong addr, int npages)
    {
        long moved = 0;
        p.Mm.MmapLock.ReadLock();
        try
        {
            for (int done = 0; done < npages;)
            {
                int n = Math.Min(npages - done, Page.PmdPages);
                ulong start = addr + ((ulong)done << Page.Shift);
                var vma = p.Mm.FindVma(start) ?? throw new InvalidOperationException("no VMA");
                moved += Math.Max(0, ToSystem(vma, start, n, null));
                done += n;
            }
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        return moved;
    }

    /// <summary>Makes migrate_to_ram claim success without migrating (a MIG-R08 bug, for tests).</summary>
    public bool BreakMigrateToRam { get; set; }

    public VmFaultResult MigrateToRam(in VmFault vmf)
    {
        MigrateToRamCalls++;
        if (BreakMigrateToRam) return VmFaultResult.Ok;
        LastFault = (vmf.Address, vmf.Page, vmf.Write);
        bool large = Machine.Frames.Order(vmf.Page) == Page.PmdOrder;
        ulong start = large ? vmf.Address & ~(Page.PmdSize - 1) : Page.AlignDown(vmf.Address);
        long moved = ToSystem(vmf.Vma, start, large ? Page.PmdPages : 1, vmf.Page);
        // As dmirror_devmem_fault: a migrate_vma_setup error is SIGBUS; a page that did not move (an
        // eviction racing the fault held a reference) is not an error — the CPU faults again.
        return moved >= 0 ? VmFaultResult.Ok : VmFaultResult.SigBus;
    }

    /// <summary>Migrates back what it can of [start, +n); the pages moved, or -1 when migrate_vma_setup failed.</summary>
    private long ToSystem(Vma vma, ulong start, int n, ulong? faultPage)
    {
        var select = (Pgmap.Kind == DevicePageKind.Private ? MigrateSelect.DevicePrivate : MigrateSelect.DeviceCoherent) | MigrateSelect.Compound;
        var args = Prepare(vma, start, n, select, faultPage);
        var e = MigrateVma.Setup(args);
        if (e != Errno.Ok) return -1;
        SrcAfterSetup = _src.AsSpan(0, n).ToArray();
        for (int i = 0; i < n; i++)
        {
            ulong s = _src[i];
            if ((s & MigratePfn.Migrate) == 0 || !MigratePfn.IsValid(s)) continue;
            bool large = (s & MigratePfn.Compound) != 0;
            if (!SystemPages.TryAllocateLocked(Machine, large ? Page.PmdOrder : 0, out ulong page)) continue;
            Copy.Copy([new PageCopy(s >> MigratePfn.Shift, page, large ? Page.PmdOrder : 0)]);
            _dst[i] = MigratePfn.FromPfn(page) | (large ? MigratePfn.Compound : 0);
            if (large) i += Page.PmdPages - 1;
        }
        MigrateVma.Pages(args);
        SrcAfterPages = _src.AsSpan(0, n).ToArray();
        long moved = 0;
        for (int i = 0; i < n; i++) if ((_src[i] & MigratePfn.Migrate) != 0 && MigratePfn.IsValid(_src[i])) moved += (_src[i] & MigratePfn.Compound) != 0 ? Page.PmdPages : 1;
        MigrateVma.Finalize(args);
        return moved;
    }

    private MigrateVma Prepare(Vma vma, ulong start, int n, MigrateSelect select, ulong? faultPage)
    {
        Array.Clear(_dst);
        _migrate.Vma = vma;
        _migrate.Start = start;
        _migrate.End = start + ((ulong)n << Page.Shift);
        _migrate.Src = _src;
        _migrate.Dst = _dst;
        _migrate.PgmapOwner = this;
        _migrate.Flags = select;
        _migrate.FaultPage = faultPage;
        return _migrate;
    }

    private void CopyIn(ulong src, ulong dst, int order)
    {
        if (MigratePfn.IsValid(src)) Copy.Copy([new PageCopy(src >> MigratePfn.Shift, dst, order)]);
        else Copy.Clear([dst], order);
    }
}
