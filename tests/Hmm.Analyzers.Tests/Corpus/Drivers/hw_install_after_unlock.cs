// HMM1012: installs the snapshot after releasing U
public sealed class HwInstallAfterUnlock : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_install_after_unlock.update");
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
    public Errno Mirror(HmmRange range)
    {
        while (true)
        {
            range.NotifierSeq = _notifier.ReadBegin();
            _mm.MmapLock.ReadLock();
            Errno e;
            try { e = range.Fault(); } finally { _mm.MmapLock.ReadUnlock(); }
            if (e == Errno.EBUSY) continue;
            if (e != Errno.Ok) return e;
            _update.Lock();
#if FIXED
            try { if (_notifier.ReadRetry(range.NotifierSeq)) continue; return _pt.Install(range.Start, range.HmmPfns); }
            finally { _update.Unlock(); }
#else
            try { if (_notifier.ReadRetry(range.NotifierSeq)) continue; }
            finally { _update.Unlock(); }
            return _pt.Install(range.Start, range.HmmPfns);
#endif
        }
    }
}
