// HMM1033: migrate_to_ram sets up the migration without the faulting page, so the CPU refaults forever
public sealed class HwMigrateToRamNoFaultPage : IDevPagemapOps
{
    public void PageFree(DevPagemap pgmap, ulong pfn) { }
    public VmFaultResult MigrateToRam(in VmFault vmf)
    {
        ulong start = vmf.Address & ~4095UL;
#if FIXED
        using var args = new MigrateVma { Vma = vmf.Vma, Start = start, End = start + 4096, Src = new ulong[1], Dst = new ulong[1], PgmapOwner = this, FaultPage = vmf.Page };
#else
        using var args = new MigrateVma { Vma = vmf.Vma, Start = start, End = start + 4096, Src = new ulong[1], Dst = new ulong[1], PgmapOwner = this };
#endif
        if (MigrateVma.Setup(args) != Errno.Ok) return VmFaultResult.SigBus;
        MigrateVma.Pages(args);
        MigrateVma.Finalize(args);
        return VmFaultResult.Ok;
    }
}
