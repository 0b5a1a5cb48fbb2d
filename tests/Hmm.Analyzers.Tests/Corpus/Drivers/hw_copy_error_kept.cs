// HMM1040: a DMA copy error is counted but the device page stays in dst[], so migrate_vma_pages commits garbage
public sealed class HwCopyErrorKept : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_copy_error_kept.update");
    private AddressSpace _mm = null!;
    private CopyEngine _copy = null!;
    private DevPagemap _chunk = null!;
    private ulong _next;
    private long _copyErrors;
    private readonly DevicePageTable _pt = new();

    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
        try { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); return true; }
        finally { _update.Unlock(); }
    }

    private bool AllocDevicePage(out ulong pfn)
    {
        pfn = _chunk.FirstPfn + _next++;
        if (_next > _chunk.PageCount) return false;
        _chunk.InitPage(pfn);
        return true;
    }

    /// <summary>nouveau_dmem_migrate_copy_one for every collected page.</summary>
    private void CopyChunk(MigrateVma args)
    {
        for (int i = 0; i < args.EntryCount; i++)
        {
            if (MigratePfn.ToPfn(args.Src[i]) is not { } spfn || !AllocDevicePage(out ulong dpfn)) continue;
#if FIXED
            if (!_copy.TryCopy([new PageCopy(spfn, dpfn)])) { _copyErrors++; continue; }
            args.Dst[i] = MigratePfn.FromPfn(dpfn);
#else
            args.Dst[i] = MigratePfn.FromPfn(dpfn);
            if (!_copy.TryCopy([new PageCopy(spfn, dpfn)])) _copyErrors++;
#endif
        }
    }

    public Errno ToDevice(Vma vma, ulong start)
    {
        using var args = new MigrateVma { Vma = vma, Start = start, End = start + (512UL << 12), Src = new ulong[512], Dst = new ulong[512], PgmapOwner = this, Flags = MigrateSelect.System };
        _mm.MmapLock.ReadLock();
        try
        {
            if (MigrateVma.Setup(args) != Errno.Ok) return Errno.EINVAL;
            try
            {
                CopyChunk(args);
                MigrateVma.Pages(args);
            }
            finally { MigrateVma.Finalize(args); }
            return Errno.Ok;
        }
        finally { _mm.MmapLock.ReadUnlock(); }
    }
}
