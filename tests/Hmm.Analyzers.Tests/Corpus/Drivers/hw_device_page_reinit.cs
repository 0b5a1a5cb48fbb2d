// HMM1043: after a copy error the driver retries the entry with the same device page and initialises it a second time
public sealed class HwDevicePageReinit
{
    private DevPagemap _vram = null!;
    private CopyEngine _copy = null!;
    private readonly System.Collections.Generic.Stack<ulong> _free = new();
    private long _copyErrors;

    private bool NextFree(out ulong pfn) => _free.TryPop(out pfn);

    /// <summary>Allocates and copies a destination for each collected entry, retrying an entry once on a DMA error.</summary>
    public void AllocAndCopy(MigrateVma args)
    {
        for (int i = 0; i < args.EntryCount; i++)
        {
            if (MigratePfn.ToPfn(args.Src[i]) is not { } spfn) continue;
            if (!NextFree(out ulong dpfn)) return;
            _vram.InitPage(dpfn);
            if (!_copy.TryCopy([new PageCopy(spfn, dpfn)]))
            {
                _copyErrors++;
#if FIXED
                if (!NextFree(out dpfn)) continue;   // retry with a fresh page
#endif
                _vram.InitPage(dpfn);
                if (!_copy.TryCopy([new PageCopy(spfn, dpfn)])) continue;
            }
            args.Dst[i] = MigratePfn.FromPfn(dpfn);
        }
    }
}
