// HMM1042: migrate_to_ram hands its device-private migration to a tracing helper that keeps a CPU copy of the source page
public sealed class HwMigrateHelperCpuCopy
{
    private Machine _machine = null!;
    private CopyEngine _dma = null!;
    private ulong _tracePage;

    public VmFaultResult MigrateToRam(in VmFault vmf)
    {
        ulong start = vmf.Address & ~0xFFFUL;
        using var args = new MigrateVma { Vma = vmf.Vma, Start = start, End = start + 4096, Src = new ulong[1], Dst = new ulong[1], Flags = MigrateSelect.DevicePrivate, PgmapOwner = this, FaultPage = vmf.Page };
        if (MigrateVma.Setup(args) != Errno.Ok) return VmFaultResult.SigBus;
        Trace(args);
        MigrateVma.Pages(args);
        MigrateVma.Finalize(args);
        return VmFaultResult.Ok;
    }

    private void Trace(MigrateVma m) => KeepCopy(m);

#if FIXED
    private void KeepCopy(MigrateVma m) => _dma.Copy([new PageCopy(m.Src[0] >> MigratePfn.Shift, _tracePage)]);
#else
    private void KeepCopy(MigrateVma m) => HighMem.CopyPage(_machine, _tracePage, m.Src[0] >> MigratePfn.Shift);
#endif
}
