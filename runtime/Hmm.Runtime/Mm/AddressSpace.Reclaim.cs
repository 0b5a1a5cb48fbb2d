using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class AddressSpace
{
    /// <summary>
    /// try_to_unmap_one for lazy-free pages: every MADV_FREE'd page still clean (not written since)
    /// is unmapped with a CLEAR on its page and freed; a written one loses its lazy-free mark.
    /// Returns the pages freed.
    /// </summary>
    internal int ReclaimLazyFree()
    {
        int freed = 0;
        MmapLock.WriteLock();
        try
        {
            if (IsTornDown) return 0;
            for (int i = 0; i < VmaTree.Count; i++)
            {
                var vma = VmaTree[i];
                if (!vma.IsPrivateAnon) continue;
                for (ulong va = vma.Start; va < vma.End; va += Page.Size)
                {
                    ref ulong slot = ref Tables.PteSlot(va);
                    if (System.Runtime.CompilerServices.Unsafe.IsNullRef(ref slot)) { va = (va | (Page.PmdSize - 1)) + 1 - Page.Size; continue; }
                    var pte = new Pte(slot);
                    if (pte.Kind != PteKind.Present || IsZeroPfn(pte.Pfn)) continue;
                    ulong pfn = pte.Pfn;
                    if ((Frames.Flags(pfn) & PageFlags.LazyFree) == 0) continue;
                    // Kept (and no longer lazy-free): a dirty page, one mapped elsewhere, or one with
                    // references beyond its mapping such as a GUP pin — shrink_folio_list only
                    // discards a clean lazy-free folio nobody else holds.
                    ulong head = Frames.FolioHead(pfn);
                    if (pte.IsDirty || Frames.MapCount(pfn) != 1 || Frames.EntireMapCount(head) != 0
                        || Frames.PinCount(head) != 0 || (Frames.Order(head) == 0 && Frames.RefCount(pfn) != 1))
                    {
                        Frames.ClearFlags(pfn, PageFlags.LazyFree);
                        continue;
                    }
                    var hook = InvalidateStart(NotifyEvent.Clear, va, va + Page.Size);
                    Frames.ClearFlags(pfn, PageFlags.LazyFree);
                    PageTableLock.Lock();
                    try { ZapPte(ref slot); }
                    finally { PageTableLock.Unlock(); }
                    InvalidateEnd(hook, NotifyEvent.Clear, va, va + Page.Size);
                    freed++;
                }
            }
        }
        finally { MmapLock.WriteUnlock(); }
        return freed;
    }
}
