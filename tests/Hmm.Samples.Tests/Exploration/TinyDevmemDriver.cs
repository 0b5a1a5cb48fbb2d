using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.Tests.Exploration;

/// <summary>
/// The smallest device-private memory driver: one 2 MiB pagemap, a free list, migrate to the
/// device, and migrate_to_ram. With <c>passFaultPage: false</c> it carries the planted bug:
/// migrate_to_ram sets up the migration without the faulting page's reference (vmf->page as
/// fault_page), so migrate_vma_setup cannot isolate the page the fault path holds locked.
/// </summary>
internal sealed class TinyDevmemDriver : IDevPagemapOps
{
    private readonly Machine _machine;
    private readonly DevPagemap _pgmap;
    private readonly CopyEngine _copy;
    private readonly Stack<ulong> _free = new();
    private readonly bool _passFaultPage;

    public TinyDevmemDriver(Machine machine, bool passFaultPage)
    {
        _machine = machine;
        _passFaultPage = passFaultPage;
        _copy = new CopyEngine(machine);
        Errno e = DevPagemap.Create(machine, DevicePageKind.Private, 2UL << 20, owner: this, ops: this, out DevPagemap? pgmap);
        if (e != Errno.Ok) throw new ErrnoException(e, "memremap_pages");
        _pgmap = pgmap!;
        for (ulong i = 0; i < 16; i++) _free.Push(_pgmap.FirstPfn + i);
    }

    public Errno MigrateToDevice(Process process, ulong addr)
    {
        AddressSpace mm = process.Mm;
        mm.MmapLock.ReadLock();
        try
        {
            using var args = new MigrateVma
            {
                Vma = mm.FindVma(addr), Start = addr, End = addr + 4096,
                Src = new ulong[1], Dst = new ulong[1], Flags = MigrateSelect.System, PgmapOwner = this,
            };
            Errno e = MigrateVma.Setup(args);
            if (e != Errno.Ok) return e;
            if (MigratePfn.ToPfn(args.Src[0]) is { } spfn && (args.Src[0] & MigratePfn.Migrate) != 0 && _free.TryPop(out ulong dpfn))
            {
                _pgmap.InitPage(dpfn);
                _copy.Copy([new PageCopy(spfn, dpfn)]);
                args.Dst[0] = MigratePfn.FromPfn(dpfn);
            }

            MigrateVma.Pages(args);
            MigrateVma.Finalize(args);
            return Errno.Ok;
        }
        finally { mm.MmapLock.ReadUnlock(); }
    }

    public VmFaultResult MigrateToRam(in VmFault vmf)
    {
        using var args = new MigrateVma
        {
            Vma = vmf.Vma, Start = vmf.Address & ~(ulong)Page.OffsetMask, End = (vmf.Address & ~(ulong)Page.OffsetMask) + 4096,
            Src = new ulong[1], Dst = new ulong[1], Flags = MigrateSelect.DevicePrivate, PgmapOwner = this,
            FaultPage = _passFaultPage ? vmf.Page : null,
        };
        if (MigrateVma.Setup(args) != Errno.Ok) return VmFaultResult.SigBus;
        if (MigratePfn.ToPfn(args.Src[0]) is { } spfn && (args.Src[0] & MigratePfn.Migrate) != 0)
        {
            if (!SystemPages.TryAllocateLocked(_machine, 0, out ulong dpfn))
            {
                MigrateVma.Finalize(args);
                return VmFaultResult.Oom;
            }

            _copy.Copy([new PageCopy(spfn, dpfn)]);
            args.Dst[0] = MigratePfn.FromPfn(dpfn);
        }

        MigrateVma.Pages(args);
        MigrateVma.Finalize(args);
        return VmFaultResult.Ok;
    }

    public void PageFree(DevPagemap pgmap, ulong pfn) => _free.Push(pfn);
}
