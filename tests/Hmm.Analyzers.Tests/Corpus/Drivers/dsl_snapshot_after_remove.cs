// HMM1032: a per-call snapshot notifier is removed before its read_retry, so collisions go unseen
[HmmDriver("dsl_snapshot_after_remove", UpdateLock = nameof(_update))]
public partial class DslSnapshotAfterRemove
{
    private readonly KernelMutex _update = new("dsl_snapshot_after_remove.update");
    private AddressSpace _mm = null!;
    [OnInvalidate]
    void Invalidate(in NotifierRange range) { }

    // The per-call snapshot notifier's ops: the generator already implements IIntervalNotifierOps on the
    // driver (its mirror trampoline), so a second notifier needs ops of its own.
    private sealed class SnapshotOps(KernelMutex update) : IIntervalNotifierOps
    {
        public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
        {
            if (range.Blockable) update.Lock();
            else if (!update.TryLock()) return false;
            try { notifier.SetSeq(curSeq); return true; }
            finally { update.Unlock(); }
        }
    }

    public Errno Snapshot(ulong start, ulong end, Span<ulong> out_)
    {
        var notifier = new IntervalNotifier(new SnapshotOps(_update));
        var e = notifier.Insert(_mm, start, end - start);
        if (e != Errno.Ok) return e;
        var range = new HmmRange(notifier, start, end);
        range.NotifierSeq = notifier.ReadBegin();
        _mm.MmapLock.ReadLock();
        try { e = range.Fault(); }
        finally { _mm.MmapLock.ReadUnlock(); }
#if FIXED
        _update.Lock();
        try { if (e == Errno.Ok && notifier.ReadRetry(range.NotifierSeq)) e = Errno.EBUSY; }
        finally { _update.Unlock(); }
        notifier.Remove();
#else
        notifier.Remove();
        _update.Lock();
        try { if (e == Errno.Ok && notifier.ReadRetry(range.NotifierSeq)) e = Errno.EBUSY; }
        finally { _update.Unlock(); }
#endif
        return e;
    }
}
