// HMM1015: sets the sequence only when the range overlaps its mirror
public sealed class HwSetSeqMissing : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_set_seq_missing.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    private ulong _start, _end;
    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
        try
        {
#if FIXED
            notifier.SetSeq(curSeq);
            if (range.Overlaps(_start, _end)) _pt.Clear(range.Start, range.End);
#else
            if (range.Overlaps(_start, _end)) { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); }
#endif
            return true;
        }
        finally { _update.Unlock(); }
    }
}
