using Hmm.Dsl;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Migration;

/// <summary>
/// Simulates device-side eviction without virtual addresses (migrate_device_range /
/// migrate_device_pages / migrate_device_finalize, reference B.6): a driver migrates device
/// pages back to system memory by pfn — when it runs out of device memory, or before its
/// memory goes away.
/// </summary>
public static class MigrateDevice
{
    /// <summary>
    /// migrate_device_range: for each device pfn in [<paramref name="startPfn"/>, +src.Length)
    /// that is in use, takes a reference and (try-)locks it, marks it MIGRATE (COMPOUND for a
    /// 2 MiB folio, whose tail entries stay 0) and turns its CPU mappings into migration entries
    /// (CLEAR events, owner none). Free, busy-locked or extra-referenced pages get 0.
    /// </summary>
    [MayBlock]
    [Migrates]
    public static Errno Range(Machine machine, Span<ulong> src, ulong startPfn)
    {
        var frames = machine.Frames;
        src.Clear();
        for (int i = 0; i < src.Length; i++)
        {
            ulong pfn = startPfn + (ulong)i;
            if (!machine.IsDevicePage(pfn) || (frames.Flags(pfn) & PageFlags.Tail) != 0) continue;
            if (!TryGet(machine, pfn)) continue;            // free page: nothing to evict
            if (!machine.TryLockPage(pfn)) { machine.PutPage(pfn); continue; }
            bool large = frames.Order(pfn) == Page.PmdOrder;
            src[i] = MigratePfn.FromPfn(pfn) | MigratePfn.Migrate | (large ? MigratePfn.Compound : 0);
        }
        for (int i = 0; i < src.Length; i++)
        {
            ulong word = src[i];
            if ((word & MigratePfn.Migrate) == 0) continue;
            ulong pfn = word >> MigratePfn.Shift;
            MigrationEngine.UnmapOthers(machine, pfn, (word & MigratePfn.Compound) != 0 ? Page.PmdPages : 1);
            if (!MigrationEngine.OnlyMigrationHoldsIt(machine, pfn, null)) MigrationEngine.Restore(machine, ref src[i], null);
        }
        Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.MigrateDeviceUnmapped, machine, startPfn);
        return Errno.Ok;
    }

    /// <summary>migrate_device_pages: commits every entry with a destination; a compound source with base-page destinations migrates page by page.</summary>
    [MayBlock]
    [Migrates]
    [CommitsDestinations]
    public static void Pages(Machine machine, Span<ulong> src, ReadOnlySpan<ulong> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("dst is shorter than src", nameof(dst));
        for (int i = 0; i < src.Length; i++)
        {
            if (!MigratePfn.IsValid(dst[i])) continue;
            if ((src[i] & MigratePfn.Migrate) == 0 && !InsideCompound(src, i))
                throw new KernelBugException("MIG-R04", $"dst[{i}] filled where src[{i}] has no MIGRATE");
            MigrationEngine.CheckDestination(machine, dst[i], i);
        }
        for (int i = 0; i < src.Length; i++)
        {
            ulong word = src[i];
            if ((word & MigratePfn.Migrate) == 0) continue;
            if (!MigratePfn.IsValid(dst[i]) || !MigratePfn.IsValid(word)) { src[i] = word & ~MigratePfn.Migrate; continue; }
            if (!MigrationEngine.CommitPage(machine, src, i, dst[i], null, canSplit: true))
                src[i] = src[i] & ~MigratePfn.Migrate;
        }
    }

    /// <summary>migrate_device_finalize: installs the destinations (or restores the sources) and releases both. Copies must be complete (MIG-R06).</summary>
    [MayBlock]
    [Migrates]
    public static void Finalize(Machine machine, Span<ulong> src, ReadOnlySpan<ulong> dst)
        => MigrationEngine.FinalizeEntries(machine, src, dst[..src.Length], null);

    /// <summary>
    /// Early removal of device memory (HMM v13's devmem removal while pages are in use): every
    /// page still in use is migrated back to newly allocated system memory, data included
    /// (copied from device memory as the kernel's eviction does), then the range is unplugged
    /// (<see cref="DevPagemap.Remove"/>). ENOMEM when system memory runs out (the pages that did
    /// move stay moved), EBUSY when a page is still referenced by someone other than its
    /// mappings (e.g. a driver that kept a reference).
    /// </summary>
    [MayBlock]
    [Migrates]
    public static Errno EvictAndRemove(DevPagemap pgmap)
    {
        var machine = pgmap.Machine;
        pgmap.IsRemoving = true;
        Errno result = Evict(pgmap, pgmap.FirstPfn, pgmap.PageCount);
        if (result != Errno.Ok) return result;
        return pgmap.Remove();
    }

    /// <summary>
    /// Evicts every in-use page of [firstPfn, +count) of <paramref name="pgmap"/> to system memory,
    /// one migrate_device_range call per 2 MiB piece. A piece holding no live device folio
    /// (<see cref="DevPagemap.IsPieceIdle"/>) is skipped without a call: migrate_device_range would
    /// find every page of it free (folio_try_get fails on a free page), so the result is the same
    /// and an empty chunk costs O(pieces) instead of O(pages).
    /// </summary>
    [MayBlock]
    [Migrates]
    public static Errno Evict(DevPagemap pgmap, ulong firstPfn, ulong count)
    {
        var machine = pgmap.Machine;
        ulong[]? src = null, dst = null;
        Errno result = Errno.Ok;
        for (ulong at = firstPfn; at < firstPfn + count; at += Page.PmdPages)
        {
            int n = (int)Math.Min((ulong)Page.PmdPages, firstPfn + count - at);
            if (pgmap.IsPieceIdle(at) && (n == 1 || pgmap.IsPieceIdle(at + (ulong)n - 1))) continue;
            src ??= new ulong[Page.PmdPages];
            dst ??= new ulong[Page.PmdPages];
            var s = src.AsSpan(0, n);
            var d = dst.AsSpan(0, n);
            d.Clear();
            Range(machine, s, at);
            for (int i = 0; i < n; i++)
            {
                if ((s[i] & MigratePfn.Migrate) == 0) continue;
                ulong spfn = s[i] >> MigratePfn.Shift;
                bool large = (s[i] & MigratePfn.Compound) != 0;
                if (!SystemPages.TryAllocateLocked(machine, large ? Page.PmdOrder : 0, out ulong page))
                {
                    result = Errno.ENOMEM;
                    continue;
                }
                unsafe
                {
                    int bytes = Page.Size << (large ? Page.PmdOrder : 0);
                    var from = pgmap.DeviceBytes(spfn, large ? Page.PmdOrder : 0);
                    from.CopyTo(new Span<byte>(machine.PageAddress(page), bytes));
                }
                d[i] = MigratePfn.FromPfn(page) | (large ? MigratePfn.Compound : 0);
            }
            Pages(machine, s, d);
            Finalize(machine, s, d);
        }
        return result;
    }

    /// <summary>
    /// migrate_device_coherent_folio: moves one device-coherent folio, with its data, to a new
    /// system page (the long-term pin path). False when it is busy, pinned or RAM is short.
    /// </summary>
    internal static bool MigrateCoherentFolio(Machine machine, ulong pfn)
    {
        Span<ulong> src = stackalloc ulong[1];
        Span<ulong> dst = stackalloc ulong[1];
        ulong head = machine.Frames.FolioHead(pfn);
        if (machine.Frames.Order(head) != 0) return false;
        if (!TryGet(machine, head)) return false;
        if (!machine.TryLockPage(head)) { machine.PutPage(head); return false; }
        src[0] = MigratePfn.FromPfn(head) | MigratePfn.Migrate;
        MigrationEngine.UnmapOthers(machine, head, 1);
        if (!MigrationEngine.OnlyMigrationHoldsIt(machine, head, null))
        {
            MigrationEngine.Restore(machine, ref src[0], null);
            return false;
        }
        if (SystemPages.TryAllocateLocked(machine, 0, out ulong page))
        {
            unsafe { Buffer.MemoryCopy(machine.DmaAddress(head), machine.PageAddress(page), Page.Size, Page.Size); }
            dst[0] = MigratePfn.FromPfn(page);
        }
        Pages(machine, src, dst);
        bool moved = (src[0] & MigratePfn.Migrate) != 0;
        Finalize(machine, src, dst);
        return moved;
    }

    private static bool InsideCompound(ReadOnlySpan<ulong> src, int i)
    {
        for (int j = Math.Max(0, i - Page.PmdPages + 1); j < i; j++)
            if ((src[j] & (MigratePfn.Compound | MigratePfn.Migrate)) == (MigratePfn.Compound | MigratePfn.Migrate)) return true;
        return false;
    }

    private static bool TryGet(Machine machine, ulong pfn) => machine.TryGetPage(pfn);   // folio_try_get: a free page fails
}

/// <summary>System-memory destination pages for migrations (alloc_page + lock_page).</summary>
public static class SystemPages
{
    /// <summary>
    /// Allocates a system page (order 0) or 2 MiB folio (order 9) as a migration destination:
    /// refcount 1 and locked, contents undefined (the caller copies or clears). False when RAM
    /// is exhausted.
    /// </summary>
    [MayReclaim]
    public static bool TryAllocateLocked(Machine machine, int order, out ulong pfn)
    {
        if (!machine.Allocator.TryAllocate(order, out pfn)) return false;
        machine.Frames.Flags(pfn) |= PageFlags.Locked | PageFlags.Lru;
        return true;
    }

    /// <summary>
    /// alloc_page(GFP_KERNEL | __GFP_ZERO) for a driver: a zeroed page the driver owns (one
    /// reference), e.g. to <see cref="Vma.InsertPage"/> into a device-file mapping. The driver
    /// drops its reference with <see cref="PutKernelPage"/>.
    /// </summary>
    [MayReclaim]
    public static bool TryAllocateKernelPage(Machine machine, out ulong pfn)
    {
        if (!machine.Allocator.TryAllocate(0, out pfn)) return false;
        machine.Memory.Clear(pfn);
        machine.Frames.Flags(pfn) |= PageFlags.Kernel;
        return true;
    }

    /// <summary>
    /// alloc_pages(GFP_HIGHUSER[ | __GFP_ZERO], <paramref name="order"/>) for a driver's own use: a
    /// page (order 0) or 2 MiB folio (order 9) the driver owns with one reference, not mapped
    /// anywhere — e.g. the system memory a fake device stores its data in (test_hmm's backing
    /// pages). Contents are undefined unless <paramref name="zero"/>. Released with
    /// <see cref="PutKernelPage"/>.
    /// </summary>
    [MayReclaim]
    public static bool TryAllocateKernelPage(Machine machine, int order, bool zero, out ulong pfn)
    {
        if (order != 0 && order != Page.PmdOrder) throw new ArgumentOutOfRangeException(nameof(order));
        if (!machine.Allocator.TryAllocate(order, out pfn)) return false;
        if (zero) machine.Memory.Clear(pfn, order);
        machine.Frames.Flags(pfn) |= PageFlags.Kernel;
        return true;
    }

    /// <summary>put_page for a driver's own reference.</summary>
    public static void PutKernelPage(Machine machine, ulong pfn) => machine.PutPage(machine.Frames.FolioHead(pfn));
}
