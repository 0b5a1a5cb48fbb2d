// HMM1024: page_free takes the allocator mutex
public sealed class HwPagefreeMutex : IIntervalNotifierOps
{
    private readonly KernelMutex _update = new("hw_pagefree_mutex.update");
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
    private readonly DevicePages _pages = new();
    public sealed class DevicePages : IDevPagemapOps
    {
#if FIXED
        private readonly SpinLock _lock = new("alloc");
#else
        private readonly KernelMutex _lock = new("alloc");
#endif
        private int _free;
        public void PageFree(DevPagemap pgmap, ulong pfn) { _lock.Lock(); _free++; _lock.Unlock(); }
        public VmFaultResult MigrateToRam(in VmFault vmf) => VmFaultResult.SigBus;
    }
}
