// HMM1042: migrate_to_ram parks its device-private migration in a field for the completion step, which CPU-copies a source page out of device memory
public sealed class HwMigrateFieldCpuCopy
{
    private Machine _machine = null!;
    private CopyEngine _dma = null!;
    private ulong _bounce;
    private MigrateVma? _inFlight;

    public VmFaultResult MigrateToRam(in VmFault vmf)
    {
        ulong start = vmf.Address & ~0xFFFUL;
        using var args = new MigrateVma { Vma = vmf.Vma, Start = start, End = start + 4096, Src = new ulong[1], Dst = new ulong[1], Flags = MigrateSelect.DevicePrivate, PgmapOwner = this, FaultPage = vmf.Page };
        if (MigrateVma.Setup(args) != Errno.Ok) return VmFaultResult.SigBus;
        _inFlight = args;
        Complete();
        MigrateVma.Pages(args);
        MigrateVma.Finalize(args);
        _inFlight = null;
        return VmFaultResult.Ok;
    }

    private void Complete()
    {
        ulong src = _inFlight!.Src[0] >> MigratePfn.Shift;
#if FIXED
        _dma.Copy([new PageCopy(src, _bounce)]);
#else
        HighMem.CopyPage(_machine, _bounce, src);
#endif
    }
}
