using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class Machine
{
    /// <summary>
    /// split_huge_page / split_folio: turns the 2 MiB anonymous folio headed at
    /// <paramref name="head"/> into 512 independent base pages. Every PMD mapping of it, in any
    /// address space, is split first (CLEAR over each PMD range); then each subpage keeps the
    /// references of its own mappings, and subpages nothing maps are freed. Fails (false, nothing
    /// changed beyond the PMD splits) when the folio is pinned or has references beyond its
    /// mappings and the caller's <paramref name="callerRefs"/>, as can_split_folio does.
    /// </summary>
    internal bool TrySplitFolio(ulong head, int callerRefs)
    {
        if (Frames.Order(head) != Page.PmdOrder || (Frames.Flags(head) & (PageFlags.HugeTlb | PageFlags.Zero)) != 0) return false;
        if (OwnerOf(Frames.Owner(head)) is not AnonVma || Frames.PinCount(head) != 0) return false;

        var hits = Rmap.Scratch();
        Rmap.Collect(this, head, Page.PmdPages, PteKindSet.Of(PteKind.Present, PteKind.DevicePrivate, PteKind.DeviceExclusive), hits);
        var pmdMappings = hits.ToArray();
        foreach (var hit in pmdMappings)
        {
            if (!hit.Huge) continue;
            bool taken = hit.Mm.LockForRmap();
            try { hit.Mm.SplitHugePmd(hit.Vma, hit.Address, notify: true); }
            finally { hit.Mm.UnlockForRmap(taken); }
        }
        if (Frames.EntireMapCount(head) != 0) return false;
        long mapped = 0;
        for (ulong i = 0; i < Page.PmdPages; i++) mapped += Frames.MapCount(head + i);
        if (Volatile.Read(ref Frames.RefCount(head)) != mapped + callerRefs) return false;

        if ((Frames.Flags(head) & PageFlags.Device) != 0) DeviceMemory?.FolioSplit(head);
        var keep = Frames.Flags(head) & (PageFlags.Anon | PageFlags.Dirty | PageFlags.Lru | PageFlags.Device | PageFlags.Locked);
        for (ulong i = 0; i < Page.PmdPages; i++)
        {
            ulong pfn = head + i;
            var flags = (Frames.Flags(pfn) & (PageFlags.AnonExclusive | PageFlags.LazyFree)) | (keep & ~(i == 0 ? 0 : PageFlags.Locked));
            Frames.Flags(pfn) = flags;
            Frames.Order(pfn) = 0;
            Frames.Owner(pfn) = Frames.Owner(head);
            Frames.RefCount(pfn) = Frames.MapCount(pfn) + (i == 0 ? callerRefs : 0);
        }
        Frames.EntireMapCount(head) = 0;
        for (ulong i = 0; i < Page.PmdPages; i++)
            if (Frames.RefCount(head + i) == 0) FreeFolio(head + i);
        return true;
    }
}
