// HMM1042: the driver's own migrate_to_ram copies the faulting device-private page with the CPU
[HmmDriver("dsl_cpu_copy_private", UpdateLock = nameof(_update))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20)]
public partial class DslCpuCopyPrivate
{
    private readonly KernelMutex _update = new("dsl_cpu_copy_private.update");
    private Machine _machine = null!;
    private CopyEngine _dma = null!;
    private long _faults;

    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies) => _dma.Copy(copies);

    /// <summary>Saves the faulting page into a spare system page before the migration (a debug snapshot).</summary>
    [OnMigrateToRam]
    private VmFaultResult ToRam(in VmFault vmf)
    {
        _faults++;
        if (!SystemPages.TryAllocateKernelPage(_machine, out ulong spare)) return VmFaultResult.Oom;
#if FIXED
        _dma.Copy([new PageCopy(vmf.Page, spare)]);
#else
        Snapshot(spare, vmf.Page);
#endif
        SystemPages.PutKernelPage(_machine, spare);
        return VmFaultResult.SigBus;
    }

    private void Snapshot(ulong into, ulong page) => HighMem.CopyPage(_machine, into, page);
}
