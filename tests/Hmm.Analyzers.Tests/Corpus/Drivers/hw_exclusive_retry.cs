// HMM1022: retries the atomic mapping without releasing the exclusive folio
public sealed class HwExclusiveRetry : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_exclusive_retry.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();

    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
        try { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); return true; }
        finally { _update.Unlock(); }
    }
    private Errno MapAtomic(ulong pfn) => pfn == 0 ? Errno.EAGAIN : Errno.Ok;
    public Errno Atomic(ulong addr)
    {
        _mm.MmapLock.ReadLock();
        try
        {
            for (int attempt = 0; attempt < 4; attempt++)
            {
                if (DeviceExclusive.Make(_mm, addr, this, out var page) != Errno.Ok) continue;
#if FIXED
                using (page) { if (MapAtomic(page.Pfn) == Errno.Ok) return Errno.Ok; }
#else
                if (MapAtomic(page.Pfn) != Errno.Ok) continue;
                page.Dispose();
                return Errno.Ok;
#endif
            }
            return Errno.EBUSY;
        }
        finally { _mm.MmapLock.ReadUnlock(); }
    }
}
