using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;

namespace Hmm.Runtime.Tests.Properties;

/// <summary>
/// Device-memory operations of the model test (device-memory issue, acceptance 2): a private and a
/// coherent <see cref="TestDevice"/>; migration to and from them, device-exclusive access, pins,
/// device removal. Migration, exclusive access and pins never change bytes, so the model's
/// contents are untouched; what they do change is who shares a page (COW breaks of GUP and
/// make_device_exclusive, fork copying pinned pages) and whether a lazy-free page may still be
/// dropped — where that depends on physical placement the model does not track (which folio a
/// page belongs to, whether migration moved it, whether it sits in coherent memory) it asks the
/// simulator's page tables, as the THP collapse check does.
/// </summary>
internal sealed partial class MmRunner
{
    private const ulong DeviceBytes = 8UL << 20;

    private readonly bool _devices;
    private TestDevice _private = null!, _coherent = null!;
    private readonly List<TestDevice> _removed = new();      // EvictAndRemove succeeded
    private readonly List<TestDevice> _removing = new();     // EvictAndRemove was EBUSY (a pinned page): finished at the end
    private readonly List<KeptPin> _pins = new();
    private int _deviceCount;

    private sealed class KeptPin
    {
        public required PinnedPages Pin;
        public required ModelProc Proc;
        public required ulong Addr;
        public int Ttl;
    }

    private void CreateDevices()
    {
        _private = NewDevice(DevicePageKind.Private);
        _coherent = NewDevice(DevicePageKind.Coherent);
    }

    private TestDevice NewDevice(DevicePageKind kind)
        => new(_machine, kind, DeviceBytes, $"{kind}{_deviceCount++}".ToLowerInvariant());

    private IEnumerable<TestDevice> AllDevices => new[] { _private, _coherent }.Concat(_removed).Concat(_removing);

    // ---- simulator look-ups (placement the model does not track) ------------------------------

    /// <summary>The simulator's entry for the page at <paramref name="va"/> and the pfn of that very page (a THP's subpage).</summary>
    private static (Pte Entry, ulong Pfn) SimPage(ModelProc mp, ulong va)
    {
        var entry = mp.P.Mm.EntryAt(va);
        ulong pfn = entry.IsHuge ? entry.Pfn + ((va & (PmdSize - 1)) / PageSize) : entry.Pfn;
        return (entry, pfn);
    }

    private bool OnDevice(ModelProc mp, ulong va)
    {
        var (entry, pfn) = SimPage(mp, va);
        return entry.Kind == PteKind.DevicePrivate || (entry.Kind == PteKind.Present && _machine.IsDevicePage(pfn));
    }

    private bool OnCoherent(ModelProc mp, ulong va, out ulong head)
    {
        var (entry, pfn) = SimPage(mp, va);
        head = 0;
        if (entry.Kind != PteKind.Present || !_machine.IsDevicePage(pfn)) return false;
        head = _machine.Frames.FolioHead(pfn);
        return true;
    }

    private bool PinnedFolio(ModelProc mp, ulong va)
    {
        var (entry, pfn) = SimPage(mp, va);
        return entry.Kind == PteKind.Present && !mp.P.Mm.IsZeroPfn(pfn) && _machine.Frames.PinCount(_machine.Frames.FolioHead(pfn)) != 0;
    }

    /// <summary>
    /// MADV_FREE marks a page lazy-free only if it is a present system page (device memory is not on
    /// the LRU: madvise_free_pte_range skips zone-device folios) that nobody pinned.
    /// </summary>
    private bool LazyFreeCandidate(ModelProc mp, ulong va) => !OnDevice(mp, va) && !PinnedFolio(mp, va);

    /// <summary>Model entries whose lazy-free page sits in a pinned folio: reclaim's reference check keeps them.</summary>
    private HashSet<ModelEntry> PinnedLazyPages()
    {
        var set = new HashSet<ModelEntry>();
        foreach (var mp in _procs)
            foreach (var (pn, e) in mp.Pages)
                if (e.Page is { LazyFree: true } && PinnedFolio(mp, pn * PageSize)) set.Add(e);
        return set;
    }

    /// <summary>Whether fork gave the child its own copy of the page (a maybe-DMA-pinned anonymous page).</summary>
    private bool CopiedAtFork(ModelProc parent, ModelProc child, ulong va)
    {
        var (pe, ppfn) = SimPage(parent, va);
        var (ce, cpfn) = SimPage(child, va);
        if (pe.Kind != PteKind.Present || ce.Kind != PteKind.Present || ppfn == cpfn) return false;
        if (_machine.Frames.PinCount(_machine.Frames.FolioHead(ppfn)) == 0) Fail($"fork copied the page at 0x{va:x}, which is not pinned");
        return true;
    }

    /// <summary>The lazy-free state of a page after an operation that may or may not have faulted it (a GUP on an already writable page does not).</summary>
    private bool SimLazy(ModelProc mp, ulong va)
    {
        var (entry, pfn) = SimPage(mp, va);
        return entry.Kind == PteKind.Present && !entry.IsDirty && (_machine.Frames.Flags(pfn) & PageFlags.LazyFree) != 0;
    }

    // ---- pins that must stay put -----------------------------------------------------------------

    private List<(ModelProc Proc, ulong Va, ulong Pfn)> PinnedMappings()
    {
        var list = new List<(ModelProc, ulong, ulong)>();
        foreach (var kp in _pins)
        {
            if (!_procs.Contains(kp.Proc)) continue;
            for (int k = 0; k < kp.Pin.Pfns.Count; k++)
            {
                ulong va = kp.Addr + (ulong)k * PageSize;
                var (entry, pfn) = SimPage(kp.Proc, va);
                // The zero page is not really pinned. A page-cache page pinned read-only through a
                // MAP_PRIVATE file mapping is not unshared by GUP (gup_must_unshare is for anonymous
                // pages only), so a later write fault may COW the mapping away from it: legal.
                if (entry.Kind == PteKind.Present && pfn == kp.Pin.Pfns[k] && !kp.Proc.P.Mm.IsZeroPfn(pfn)
                    && (_machine.Frames.Flags(_machine.Frames.FolioHead(pfn)) & Hmm.Runtime.Memory.PageFlags.File) == 0)
                    list.Add((kp.Proc, va, pfn));
            }
        }
        return list;
    }

    private void CheckPinnedStayed(List<(ModelProc Proc, ulong Va, ulong Pfn)> before, string what)
    {
        foreach (var (mp, va, pfn) in before)
        {
            var (entry, now) = SimPage(mp, va);
            if (entry.Kind != PteKind.Present || now != pfn) Fail($"{what}: pinned page 0x{pfn:x} at {mp} 0x{va:x} moved (now {entry})");
        }
        if (before.Count > 0) Count($"{_op.Kind}: pinned pages stayed put");
    }

    private void TickPins()
    {
        for (int i = _pins.Count - 1; i >= 0; i--)
        {
            if (--_pins[i].Ttl > 0) continue;
            _pins[i].Pin.Dispose();
            _pins.RemoveAt(i);
        }
    }

    private void ReleaseAllPins()
    {
        foreach (var kp in _pins) kp.Pin.Dispose();
        _pins.Clear();
    }

    // ---- operations ----------------------------------------------------------------------------

    /// <summary>A range inside one VMA: (vma start page index.., pages).</summary>
    private static (ulong Addr, int Pages)? PickVmaRange(ModelProc mp, int a, int b, int c)
    {
        var vmas = Vmas(mp);
        if (vmas.Count == 0) return null;
        var v = vmas[a % vmas.Count];
        ulong pages = v.Length / PageSize;
        ulong start = (ulong)b % pages;
        switch (c % 5)
        {
            case 0: return (v.Start, (int)Math.Min(pages, 1024));                                   // whole VMA
            case 1:                                                                                  // a 2 MiB block
            {
                ulong block = (v.Start + PmdSize - 1) & ~(PmdSize - 1);
                if (block + PmdSize <= v.End) return (block, 512);
                goto default;
            }
            case 2: return (v.Start + start * PageSize, 1);
            default:
            {
                ulong rest = pages - start;
                return (v.Start + start * PageSize, (int)(1 + (ulong)(c / 5) % Math.Min(rest, 64)));
            }
        }
    }

    private void DoMigrate(Op op)
    {
        var mp = Pick(op.P);
        if (mp == null || PickVmaRange(mp, op.A, op.B, op.C) is not var (addr, n)) return;
        var dev = op.D % 2 == 0 ? _private : _coherent;
        bool back = (op.D / 2) % 3 == 0;
        dev.Compound = (op.D / 6) % 2 == 0;
        if ((op.D / 12) % 8 == 0) dev.FailAllocations = 1 + (op.D / 96) % 16;
        var pinned = PinnedMappings();
        string what = $"{mp}: migrate 0x{addr:x}+{n}p {(back ? "from" : "to")} {dev.Name}{(dev.Compound ? " (compound)" : "")}";
        if (Trace) Console.WriteLine($"   {what}");
        long moved;
        try { moved = back ? dev.MigrateToSystem(mp.P, addr, n) : dev.MigrateToDevice(mp.P, addr, n); }
        catch (ErrnoException e) { Fail($"{what}: {Describe(e)}"); return; }
        finally { dev.FailAllocations = 0; }
        Count($"Migrate: {(back ? "back" : dev.Pgmap.Kind.ToString())} {(moved == 0 ? "none moved" : moved == n ? "all moved" : "some moved")}");
        CheckPinnedStayed(pinned, what);
        for (ulong va = addr; va < addr + (ulong)n * PageSize; va += PageSize)
        {
            if (mp.Pages.TryGetValue(va / PageSize, out var e) && e.Page is { LazyFree: true } page && OnDevice(mp, va))
            {
                page.LazyFree = false;   // the destination is a new, dirty page
                Count("Migrate: lazy-free page moved");
            }
        }
        Remember(addr + (ulong)(op.B % n) * PageSize + (ulong)(op.C % 4000));
        Remember(addr);
    }

    private void DoExclusive(Op op)
    {
        var mp = Pick(op.P);
        if (mp == null) return;
        ulong addr = op.A % 5 < 2 && _hot.Count > 0 ? _hot[op.B % _hot.Count] & ~(PageSize - 1) : PickPage(mp, op.A, op.B);
        ulong va = addr & ~(PageSize - 1);
        Errno expected = Errno.Ok;
        bool coherentMayRefuse = false;
        var fault = AccessFault(mp, va / PageSize, write: true, out var e);
        if (fault != null) expected = Errno.EFAULT;
        else if (e!.Shared) expected = Errno.EOPNOTSUPP;                                   // shmem / file pages are not anonymous
        else if (OnCoherent(mp, va, out _))
        {
            // A coherent device page is refused (not system memory) unless the write fault first
            // copies it to system memory (COW): which one happens depends on sharing the model
            // does not track for holes migrated to the device; both leave the bytes alone.
            coherentMayRefuse = true;
        }
        var dev = op.D % 2 == 0 ? _private : _coherent;
        Errno got;
        ExclusivePage page;
        mp.P.Mm.MmapLock.ReadLock();
        try
        {
            got = DeviceExclusive.Make(mp.P.Mm, addr + (ulong)(op.C % (int)PageSize), dev, out page);
            if (got == Errno.Ok)
            {
                var entry = mp.P.Mm.EntryAt(va);
                if (entry.Kind != PteKind.DeviceExclusive) Fail($"make_device_exclusive(0x{addr:x}) succeeded but the entry is {entry}");
                if (page.Pfn != entry.Pfn) Fail($"make_device_exclusive(0x{addr:x}) returned pfn 0x{page.Pfn:x}, the entry maps 0x{entry.Pfn:x}");
            }
            page.Dispose();
        }
        finally { mp.P.Mm.MmapLock.ReadUnlock(); }
        string what = $"{mp}: make_device_exclusive(0x{addr:x})";
        if (Trace) Console.WriteLine($"   {what} -> {got}");
        Count($"Exclusive: {got}{(coherentMayRefuse ? " (coherent)" : "")}");
        if (got != expected && !(coherentMayRefuse && got == Errno.EOPNOTSUPP)) Fail($"{what}: model expects {expected}, simulator gave {got}");
        if (got != Errno.Ok) return;
        WriteTarget(e!);   // GUP with FOLL_WRITE: COW broken, page dirty (no longer lazy-free)
        e!.Exclusive = true;
        Remember(addr);
    }

    private void DoPin(Op op)
    {
        var mp = Pick(op.P);
        if (mp == null) return;
        ulong addr = op.A % 5 < 2 && _hot.Count > 0 ? _hot[op.B % _hot.Count] & ~(PageSize - 1) : PickPage(mp, op.A, op.B);
        int n = (op.C % 4) switch { 0 or 1 => 1, 2 => 1 + (op.C / 4) % 4, _ => 1 + (op.C / 4) % 32 };
        bool write = op.D % 2 == 0, longTerm = (op.D / 2) % 2 == 0;
        int keep = (op.D / 4) % 3 == 0 ? 0 : 1 + (op.D / 12) % 8;

        // Predict: the first page that cannot be pinned (EFAULT), or a long-term pin of a coherent
        // page that cannot be migrated out (a large folio or one already pinned: EBUSY).
        Errno expected = Errno.Ok;
        int ok = n, busyAt = -1;
        for (int k = 0; k < n; k++)
        {
            ulong va = addr + (ulong)k * PageSize;
            if (AccessFault(mp, va / PageSize, write, out _) != null) { expected = Errno.EFAULT; ok = k; break; }
            // Whether the fault first COW-copies a shared coherent page to system memory depends on
            // sharing the model does not track for holes migrated to the device: EBUSY is allowed.
            if (busyAt < 0 && longTerm && OnCoherent(mp, va, out ulong head)
                && (_machine.Frames.Order(head) != 0 || _machine.Frames.PinCount(head) != 0))
                busyAt = k;
        }
        var pinned = PinnedMappings();
        PinnedPages? pin = null;
        var err = Try(() => pin = mp.P.PinUserPages(addr, n, write, longTerm));
        string what = $"{mp}: pin_user_pages(0x{addr:x}, {n}, {(write ? "write" : "read")}{(longTerm ? ", longterm" : "")})";
        if (busyAt >= 0 && err is ErrnoException { Errno: Errno.EBUSY }) { expected = Errno.EBUSY; ok = busyAt; }
        ExpectErrno(what, expected == Errno.Ok ? null : expected, err);
        CheckPinnedStayed(pinned, what);

        for (int k = 0; k < ok; k++)
        {
            ulong va = addr + (ulong)k * PageSize;
            var e = mp.Pages[va / PageSize];
            e.Exclusive = false;   // GUP restores a device-exclusive entry
            if (!BreaksCow(e, write)) continue;
            bool wasLazy = e.Page is { LazyFree: true, MapCount: 1 };
            WriteTarget(e);
            if (wasLazy) e.Page!.LazyFree = SimLazy(mp, va);   // no fault if the page was already writable
        }
        if (pin == null) return;
        if (pin.Pfns.Count != n) Fail($"{what} returned {pin.Pfns.Count} pages");
        for (int k = 0; k < n; k++)
        {
            ulong va = addr + (ulong)k * PageSize;
            var (entry, pfn) = SimPage(mp, va);
            bool zero = entry.Kind == PteKind.Present && mp.P.Mm.IsZeroPfn(pfn);
            if (entry.Kind != PteKind.Present || pfn != pin.Pfns[k] && !zero)
                Fail($"{what}: page {k} pinned pfn 0x{pin.Pfns[k]:x}, but 0x{va:x} maps {entry}");
            if (longTerm && _machine.IsDevicePage(pin.Pfns[k])) Fail($"{what}: long-term pin of device page 0x{pin.Pfns[k]:x}");
            if (_machine.IsDevicePage(pin.Pfns[k])) Count("Pin: coherent page pinned in place");
        }
        Remember(addr);
        if (keep == 0) pin.Dispose();
        else _pins.Add(new KeptPin { Pin = pin, Proc = mp, Addr = addr, Ttl = keep });
    }

    /// <summary>Whether pinning the page makes it a private copy: a write pin, or any pin of writable private anonymous memory (unshare).</summary>
    private static bool BreaksCow(ModelEntry e, bool write)
        => !e.Shared && (write || (e.Obj == null && (e.Prot & Prot.Write) != 0));

    private void DoDevRemove(Op op)
    {
        bool priv = op.D % 2 == 0;
        var dev = priv ? _private : _coherent;
        bool busy = _pins.Any(kp => kp.Pin.Pfns.Any(dev.Pgmap.Contains));
        var pinned = PinnedMappings();
        long inUse = dev.Pgmap.PagesInUse;
        var got = MigrateDevice.EvictAndRemove(dev.Pgmap);
        string what = $"EvictAndRemove({dev.Name}, {inUse} pages in use)";
        if (Trace) Console.WriteLine($"   {what} -> {got}");
        Count($"DevRemove: {dev.Pgmap.Kind} {got}{(inUse > 0 ? " (pages in use)" : "")}");
        if (got != (busy ? Errno.EBUSY : Errno.Ok)) Fail($"{what}: model expects {(busy ? "EBUSY" : "Ok")}, simulator gave {got}");
        CheckPinnedStayed(pinned, what);
        if (got == Errno.Ok)
        {
            _removed.Add(dev);
            foreach (var mp in _procs)
                foreach (var pn in mp.Pages.Keys)
                    if (OnDevice(mp, pn * PageSize) && SimPage(mp, pn * PageSize).Pfn - dev.Pgmap.FirstPfn < dev.Pgmap.PageCount)
                        Fail($"{mp}: 0x{pn * PageSize:x} still maps removed device memory");
        }
        else _removing.Add(dev);
        if (priv) _private = NewDevice(DevicePageKind.Private);
        else _coherent = NewDevice(DevicePageKind.Coherent);
    }

    // ---- end of a case ---------------------------------------------------------------------------

    /// <summary>After every process exited and every pin was released: every device page came back, and each allocation was freed exactly once.</summary>
    private void CheckDevicesDrained()
    {
        foreach (var dev in _removing)
        {
            var e = dev.Pgmap.Remove();
            if (e != Errno.Ok) Fail($"{dev.Name}: finishing the removal gave {e} ({dev.Pgmap.PagesInUse} pages in use)");
        }
        foreach (var dev in AllDevices)
        {
            // One PageFree per allocation; a 2 MiB device folio split into base pages (folio_split)
            // counts as 512 allocations from then on, since each piece is freed on its own.
            if (dev.PageFrees != dev.Allocations) Fail($"{dev.Name}: {dev.Allocations} device allocations (incl. {dev.FolioSplits} splits), {dev.PageFrees} PageFree calls");
            if (dev.FolioSplits > 0) Count($"Devices: {dev.FolioSplits} device folios split");
        }
        foreach (var dev in new[] { _private, _coherent })
        {
            if (dev.FreePages != (int)dev.Pgmap.PageCount) Fail($"{dev.Name}: {dev.FreePages} of {dev.Pgmap.PageCount} device pages free");
            if (dev.Pgmap.PagesInUse != 0) Fail($"{dev.Name}: {dev.Pgmap.PagesInUse} device pages still referenced");
            var e = dev.Pgmap.Remove();
            if (e != Errno.Ok) Fail($"{dev.Name}: removal after the run gave {e}");
        }
        _machine.CheckInvariants();
    }

    private void DisposeDevices()
    {
        foreach (var kp in _pins) kp.Pin.Dispose();
        _pins.Clear();
        foreach (var dev in AllDevices)
            if (dev != null && !dev.Pgmap.IsRemoved) dev.Pgmap.Remove();   // frees the backing unless pages are still in use (a failed case)
    }
}
