using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class Machine
{
    /// <summary>
    /// Walks every address space, page table, page cache and frame and throws
    /// <see cref="KernelBugException"/> (rule INV) on the first broken invariant: VMAs sorted,
    /// aligned and non-overlapping; no entry outside a VMA; every frame's refcount equal to its
    /// mappings + page-cache reference + pins, and its mapcounts equal to the entries that map it;
    /// no allocated frame unreferenced (a leak); free frames unmapped; the allocator's free count
    /// equal to the frames marked free; notifier sequences even with no invalidation running; no
    /// migration entry and no locked page left behind (a migration set up but never finalized,
    /// MIG-R02); device pages mapped only while referenced, and free device pages unmapped.
    /// Call it when no operation is in flight (the end of a test).
    /// </summary>
    public void CheckInvariants()
    {
        ulong pages = Memory.PageCount;
        ulong maxPfn = Frames.MaxPfn;
        var pteMaps = new int[maxPfn];
        var pmdMaps = new int[maxPfn];
        var cached = new bool[pages];

        foreach (var p in Processes)
        {
            var mm = p.Mm;
            mm.MmapLock.ReadLock();
            try { mm.CollectMappings(pteMaps, pmdMaps); }
            finally { mm.MmapLock.ReadUnlock(); }
            mm.NotifierHook?.CheckIdle();
        }
        foreach (var f in Files)
        {
            for (ulong i = 0; i < f.FolioCount; i++)
            {
                ulong pfn = f.CachedPfn(i);
                if (pfn == 0) continue;
                if (pfn >= pages) Fail($"{f} caches pfn 0x{pfn:x} outside system RAM");
                if (cached[pfn]) Fail($"pfn 0x{pfn:x} cached twice");
                cached[pfn] = true;
            }
        }

        long free = 0;
        for (ulong pfn = 0; pfn < pages; pfn++)
        {
            var flags = Frames.Flags(pfn);
            if ((flags & PageFlags.Reserved) != 0) continue;
            if ((flags & PageFlags.Free) != 0)
            {
                free++;
                if (pteMaps[pfn] != 0 || pmdMaps[pfn] != 0 || Frames.RefCount(pfn) != 0)
                    Fail($"free pfn 0x{pfn:x} is mapped ({pteMaps[pfn]} PTEs, {pmdMaps[pfn]} PMDs) or referenced ({Frames.RefCount(pfn)})");
                continue;
            }
            if ((flags & PageFlags.Tail) != 0) continue;
            if ((flags & PageFlags.Locked) != 0) Fail($"pfn 0x{pfn:x} ({flags}) is still locked with nothing in flight");
            int order = Frames.Order(pfn);
            long expected = pmdMaps[pfn] + (cached[pfn] ? 1 : 0) + Frames.PinCount(pfn);
            for (ulong i = 0; i < (1UL << order); i++)
            {
                if (Frames.MapCount(pfn + i) != pteMaps[pfn + i])
                    Fail($"pfn 0x{pfn + i:x}: mapcount {Frames.MapCount(pfn + i)} but {pteMaps[pfn + i]} PTEs map it");
                expected += pteMaps[pfn + i];
            }
            if (Frames.EntireMapCount(pfn) != pmdMaps[pfn])
                Fail($"pfn 0x{pfn:x}: entire mapcount {Frames.EntireMapCount(pfn)} but {pmdMaps[pfn]} PMDs map it");
            int refs = Frames.RefCount(pfn);
            // A driver's kernel page (vm_insert_page) also carries the driver's own reference.
            if ((flags & PageFlags.Kernel) != 0 && refs >= expected && refs > 0) continue;
            if (refs != expected)
                Fail(expected == 0 && refs > 0
                    ? $"pfn 0x{pfn:x} ({flags}, order {order}) is leaked: refcount {refs}, nothing maps, caches or pins it"
                    : $"pfn 0x{pfn:x} ({flags}): refcount {refs} but mappings + cache + pins = {expected}");
        }
        if (free != Allocator.FreePages) Fail($"allocator says {Allocator.FreePages} free pages, {free} frames are marked free");

        for (ulong pfn = pages; pfn < maxPfn; pfn++)
        {
            if (!Frames.IsOnline(pfn) || (Frames.Flags(pfn) & PageFlags.Device) == 0)
            {
                if (pteMaps[pfn] != 0 || pmdMaps[pfn] != 0) Fail($"pfn 0x{pfn:x} is mapped but is not memory");
                continue;
            }
            var flags = Frames.Flags(pfn);
            if ((flags & PageFlags.Tail) != 0) continue;
            int order = Frames.Order(pfn);
            long maps = pmdMaps[pfn];
            for (ulong i = 0; i < (1UL << order); i++)
            {
                if (Frames.MapCount(pfn + i) != pteMaps[pfn + i])
                    Fail($"device pfn 0x{pfn + i:x}: mapcount {Frames.MapCount(pfn + i)} but {pteMaps[pfn + i]} entries map it");
                maps += pteMaps[pfn + i];
            }
            int refs = Frames.RefCount(pfn);
            if ((flags & PageFlags.Locked) != 0) Fail($"device pfn 0x{pfn:x} is still locked with nothing in flight");
            if (refs < maps + Frames.PinCount(pfn))
                Fail($"device pfn 0x{pfn:x}: refcount {refs} below its {maps} mappings + {Frames.PinCount(pfn)} pins");
        }
    }

    internal static void Fail(string message) => throw new KernelBugException("INV", message);
}
