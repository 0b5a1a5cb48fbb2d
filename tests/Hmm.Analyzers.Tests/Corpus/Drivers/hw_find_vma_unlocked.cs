// HMM1010: looks the VMA up before taking the mmap lock
public sealed class HwFindVmaUnlocked : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_find_vma_unlocked.update");
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
    public bool Writable(ulong addr)
    {
#if FIXED
        _mm.MmapLock.ReadLock();
        try { var vma = _mm.FindVma(addr); return vma != null && (vma.Flags & VmFlags.Write) != 0; }
        finally { _mm.MmapLock.ReadUnlock(); }
#else
        var vma = _mm.FindVma(addr);
        return vma != null && (vma.Flags & VmFlags.Write) != 0;
#endif
    }
}
