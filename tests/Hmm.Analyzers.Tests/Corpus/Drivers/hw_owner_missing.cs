// HMM1028: owns device-private memory but never tells hmm_range_fault its owner: own pages ping-pong to RAM
public sealed class HwOwnerMissing : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_owner_missing.update");
    private readonly Machine _machine = null!;
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private DevPagemap? _pgmap;
    private readonly DevicePageTable _pt = new();

    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
        try { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); return true; }
        finally { _update.Unlock(); }
    }
    public Errno AddMemory(ulong bytes) => DevPagemap.Create(_machine, DevicePageKind.Private, bytes, this, null, out _pgmap);
    public Errno Fault(ulong start, ulong end)
    {
#if FIXED
        var range = new HmmRange(_notifier, start, end) { DefaultFlags = HmmPfn.ReqFault, DevPrivateOwner = this };
#else
        var range = new HmmRange(_notifier, start, end) { DefaultFlags = HmmPfn.ReqFault };
#endif
        range.NotifierSeq = _notifier.ReadBegin();
        _mm.MmapLock.ReadLock();
        try { return range.Fault(); }
        finally { _mm.MmapLock.ReadUnlock(); }
    }
}
