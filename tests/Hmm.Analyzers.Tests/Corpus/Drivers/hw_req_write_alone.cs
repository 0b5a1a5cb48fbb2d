// HMM1018: requests write access for atomics without the fault bit
public sealed class HwReqWriteAlone : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_req_write_alone.update");
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
    public void Prepare(HmmRange range, bool atomic)
    {
#if FIXED
        range.DefaultFlags = HmmPfn.ReqFault | (atomic ? HmmPfn.ReqWrite : 0);
#else
        range.DefaultFlags = atomic ? HmmPfn.ReqWrite : HmmPfn.ReqFault;
#endif
    }
}
