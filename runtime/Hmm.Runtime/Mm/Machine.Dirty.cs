using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class Machine
{
    /// <summary>
    /// set_page_dirty / folio_mark_dirty on the head page of <paramref name="pfn"/>: a device that
    /// wrote the page through a DMA mapping tells the mm so before it drops the mapping (mlx5 ODP
    /// does this for every writable entry it unmaps, drivers.md B.6). Device pages and the zero
    /// pages are ignored, as the kernel's dirty accounting ignores them. Atomic (set_bit): callable
    /// under a spinlock, from any thread.
    /// </summary>
    public void SetPageDirty(ulong pfn)
    {
        if (!Memory.Contains(pfn) || IsZeroPfn(pfn)) return;
        Frames.SetFlags(Frames.FolioHead(pfn), PageFlags.Dirty);
    }

    /// <summary>PageDirty on the head page of <paramref name="pfn"/> (false for device and zero pages).</summary>
    public bool IsPageDirty(ulong pfn)
        => Memory.Contains(pfn) && !IsZeroPfn(pfn) && Frames.Has(Frames.FolioHead(pfn), PageFlags.Dirty);
}
