// HMM1024: page_free waits for the device to go idle through a helper
[HmmDriver("dsl_pagefree_wait", UpdateLock = nameof(_update))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20)]
public partial class DslPagefreeWait
{
    private readonly KernelMutex _update = new("dsl_pagefree_wait.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    private bool _idle;
    private void WaitIdle() { while (!_idle) System.Threading.Thread.Sleep(1); }
    private void Recycle(ulong pfn) { WaitIdle(); }
    private CopyEngine _dma = null!;
    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies) => _dma.Copy(copies);
    [OnPageFree]
    void PageFree(ulong pfn)
    {
#if FIXED
        _idle = false;
#else
        Recycle(pfn);
#endif
    }
    public void Drain() => WaitIdle();
}
