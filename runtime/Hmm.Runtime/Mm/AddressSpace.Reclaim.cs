using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class AddressSpace
{
    /// <summary>
    /// One shrink_folio_list pass over this mm's lazy-free (MADV_FREE'd) pages. Each is first
    /// aged as folio_check_references does: the rmap young walk (<see cref="Machine.PagesReferenced"/>)
    /// tests and clears the accessed bit of its mapping and asks the whole-mm notifiers
    /// (clear_flush_young), and PG_referenced is tested and cleared. A page in a VM_LOCKED mapping
    /// is kept; a referenced one gets PG_referenced and is spared for another trip (a second
    /// reference in a row would activate it; either way it stays). Only an unreferenced one goes
    /// on to <see cref="DiscardLazyFree"/>. Returns the pages freed.
    /// </summary>
    /// <remarks>
    /// The simulator has no LRU lists: a pass visits every lazy-free page, which is what repeated
    /// scans of the inactive file list reach under pressure. Pages of a PTE-mapped large folio
    /// are aged one by one (the kernel ages and reclaims the folio as a whole).
    /// </remarks>
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
                    // folio_check_references.
                    var references = Machine.PagesReferenced(pfn, 1);
                    Frames.ClearFlags(pfn, PageFlags.Referenced);
                    if (references.Locked) continue;
                    if (references.ReferencedMappings > 0)
                    {
                        // FOLIOREF_KEEP (first reference) or FOLIOREF_ACTIVATE (again, or from more
                        // than one mapping): both keep the page, lazy-free and clean.
                        Frames.SetFlags(pfn, PageFlags.Referenced);
                        continue;
                    }
                    if (DiscardLazyFree(va, ref slot)) freed++;
                }
            }
        }
        finally { MmapLock.WriteUnlock(); }
        return freed;
    }

    /// <summary>
    /// try_to_unmap_one for a lazy-free page, once reclaim decided to reclaim it (caller holds the
    /// mmap lock for write; <paramref name="slot"/> is the PTE at <paramref name="va"/>): a page
    /// still clean (not written since its MADV_FREE) is unmapped with a CLEAR on its page and
    /// freed; a written one loses its lazy-free mark (the kernel sets it swap-backed again).
    /// Returns whether it was freed.
    /// </summary>
    private bool DiscardLazyFree(ulong va, ref ulong slot)
    {
        var pte = new Pte(slot);
        if (pte.Kind != PteKind.Present || IsZeroPfn(pte.Pfn)) return false;
        ulong pfn = pte.Pfn;
        if ((Frames.Flags(pfn) & PageFlags.LazyFree) == 0) return false;
        // Kept (and no longer lazy-free): a dirty page, one mapped elsewhere, or one with
        // references beyond its mapping such as a GUP pin — shrink_folio_list only
        // discards a clean lazy-free folio nobody else holds.
        ulong head = Frames.FolioHead(pfn);
        if (pte.IsDirty || Frames.MapCount(pfn) != 1 || Frames.EntireMapCount(head) != 0
            || Frames.PinCount(head) != 0 || (Frames.Order(head) == 0 && Frames.RefCount(pfn) != 1))
        {
            Frames.ClearFlags(pfn, PageFlags.LazyFree);
            return false;
        }
        var hook = InvalidateStart(NotifyEvent.Clear, va, va + Page.Size);
        Frames.ClearFlags(pfn, PageFlags.LazyFree | PageFlags.Referenced);
        PageTableLock.Lock();
        try { ZapPte(ref slot); }
        finally { PageTableLock.Unlock(); }
        InvalidateEnd(hook, NotifyEvent.Clear, va, va + Page.Size);
        return true;
    }
}
