// HMM1013: the whole-mm invalidate_range_start waits for the device fence mutex even when the OOM reaper calls it non-blockable
public sealed class HwMmuNotifierStartSleeps : MmuNotifierOps
{
    private readonly KernelMutex _fence = new("hw_mmu_notifier_start_sleeps.fence");
    public long Invalidations;

    public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
    {
#if FIXED
        if (!range.Blockable) return Errno.EAGAIN;
#endif
        _fence.Lock();
        try { Invalidations++; }
        finally { _fence.Unlock(); }
        return Errno.Ok;
    }
}
