// HMM1024: returns device pages to a mutex-protected free list from page_free
[HmmDriver("dsl_pagefree_mutex", UpdateLock = nameof(_update))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20)]
public partial class DslPagefreeMutex
{
    private readonly KernelMutex _update = new("dsl_pagefree_mutex.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
#if FIXED
    private readonly SpinLock _free = new("free");
#else
    private readonly KernelMutex _free = new("free");
#endif
    private int _count;
    private CopyEngine _dma = null!;
    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies) => _dma.Copy(copies);
    [OnPageFree]
    void PageFree(ulong pfn) { _free.Lock(); _count++; _free.Unlock(); }
}
