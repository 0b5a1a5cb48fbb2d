// HMM1011: an SVM driver's whole-mm invalidate_range_start takes the svm lock, and its mirror path calls ReadBegin with that lock held
public sealed class HwMmuNotifierStartLockReadBegin : MmuNotifierOps
{
    private readonly KernelMutex _svm = new("hw_mmu_notifier_start_lock_read_begin.svm");
    private IntervalNotifier _range = null!;
    private long _invalidations;

    public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
    {
        if (!range.Blockable) return Errno.EAGAIN;
        _svm.Lock();
        try { _invalidations++; }
        finally { _svm.Unlock(); }
        return Errno.Ok;
    }

    public ulong Begin(HmmRange r)
    {
#if FIXED
        r.NotifierSeq = _range.ReadBegin();
        _svm.Lock();
        try { _invalidations = 0; }
        finally { _svm.Unlock(); }
#else
        _svm.Lock();
        try { r.NotifierSeq = _range.ReadBegin(); _invalidations = 0; }
        finally { _svm.Unlock(); }
#endif
        return r.NotifierSeq;
    }
}
