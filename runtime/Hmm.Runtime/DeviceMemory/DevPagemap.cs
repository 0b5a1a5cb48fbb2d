using Hmm.Dsl;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.DeviceMemory;

/// <summary>
/// Simulates <c>struct dev_pagemap</c>: a range of device memory hot-plugged as ZONE_DEVICE with a
/// struct page per device page (memremap_pages). Private memory sits in physical address space
/// nobody else uses (request_free_mem_region) and its bytes are reachable only by the device
/// (<see cref="DeviceBytes"/>, the copy engine); coherent and p2p memory is CPU-addressable.
/// </summary>
/// <remarks>
/// Page lifecycle as the kernel's: a device page starts free with refcount 0; the driver takes
/// one from its own free list and calls <see cref="InitPage"/> (zone_device_page_init: refcount 1,
/// locked); mappings take references; when the last goes, <see cref="IDevPagemapOps.PageFree"/>
/// hands it back to the driver. Initialising a page that is still referenced is a
/// <see cref="KernelBugException"/> (MIG-R10).
/// </remarks>
public sealed unsafe class DevPagemap
{
    private readonly PhysicalMemory _bytes;

    internal DevPagemap(Machine machine, DevicePageKind kind, object? owner, IDevPagemapOps? ops, ulong firstPfn, ulong pages)
    {
        Machine = machine;
        Kind = kind;
        Owner = owner;
        Ops = ops;
        FirstPfn = firstPfn;
        PageCount = pages;
        _bytes = new PhysicalMemory(firstPfn, pages);
        _livePerPiece = new int[(pages + Page.PmdPages - 1) >> Page.PmdOrder];
    }

    /// <summary>
    /// memremap_pages: hot-plugs <paramref name="bytes"/> of device memory of <paramref name="kind"/>.
    /// EINVAL when the size is zero or not a multiple of 2 MiB, or when private memory lacks an
    /// owner or ops, or coherent memory an owner (the kernel's registration checks, A.8).
    /// </summary>
    [MayBlock]
    public static Errno Create(Machine machine, DevicePageKind kind, ulong bytes, object? owner, IDevPagemapOps? ops, out DevPagemap? pgmap)
    {
        pgmap = null;
        if (bytes == 0 || bytes % Page.PmdSize != 0) return Errno.EINVAL;
        if (kind is DevicePageKind.Private or DevicePageKind.Coherent && (owner == null || ops == null)) return Errno.EINVAL;
        if (kind is not (DevicePageKind.Private or DevicePageKind.Coherent or DevicePageKind.P2PDma)) return Errno.EINVAL;
        pgmap = DeviceMemoryRegistry.For(machine).Add(kind, owner, ops, bytes >> Page.Shift);
        return Errno.Ok;
    }

    /// <summary>
    /// page_pgmap / is_zone_device_page: the device memory range <paramref name="pfn"/> belongs
    /// to, or null for system memory (and for pfns of a range already unplugged).
    /// </summary>
    public static DevPagemap? Of(Machine machine, ulong pfn)
    {
        ArgumentNullException.ThrowIfNull(machine);
        return machine.DeviceMemory is DeviceMemoryRegistry registry ? registry.PagemapOf(pfn) : null;
    }

    /// <summary>
    /// get_dev_pagemap: the device memory range <paramref name="pfn"/> belongs to, with a reference
    /// on it (pgmap->ref) — null for system memory and for a range whose removal started. A driver
    /// that keeps using another driver's pagemap (a peer's device-private page reached over p2p)
    /// holds this reference until it is done: while it is held, <see cref="Remove"/> of that range
    /// cannot complete, so the provider's memory stays plugged. Drop it with <see cref="Put"/>.
    /// </summary>
    [AcquiresReference("pgmap", "return")]
    public static DevPagemap? Get(Machine machine, ulong pfn)
    {
        var pgmap = Of(machine, pfn);
        return pgmap != null && !pgmap.IsRemoving && pgmap.TryGetLive() ? pgmap : null;
    }

    /// <summary>put_dev_pagemap: drops a reference taken by <see cref="Get"/>. More puts than gets is a <see cref="KernelBugException"/>.</summary>
    [ReleasesReference("pgmap", "this")]
    public void Put()
    {
        if ((Interlocked.Decrement(ref _liveFolios) & ~Killed) < 0)
            throw new KernelBugException("PAGE-R01", $"{this}: more pagemap references dropped than taken");
    }

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>pgmap->type.</summary>
    public DevicePageKind Kind { get; }

    /// <summary>pgmap->owner: the cookie HMM and migration compare with dev_private_owner / pgmap_owner.</summary>
    public object? Owner { get; }

    /// <summary>pgmap->ops.</summary>
    public IDevPagemapOps? Ops { get; }

    /// <summary>First pfn of the range.</summary>
    public ulong FirstPfn { get; }

    /// <summary>Number of device pages.</summary>
    public ulong PageCount { get; }

    /// <summary>Whether removal started (freed pages are no longer handed back to the driver).</summary>
    public bool IsRemoving { get; internal set; }

    // pgmap->ref (a percpu_ref in the kernel): one reference per device folio from
    // zone_device_page_init until free_zone_device_folio has finished with it, plus a kill bit
    // set by memunmap_pages. A page's refcount reaches 0 before its free path is done with the
    // struct page; only this count says when the memmap can go (issue 8, PAGE-R02).
    private long _liveFolios;
    private const long Killed = 1L << 62;

    // The same references per 2 MiB piece of the range (the piece of each folio's head), so a walk
    // over the range (the removal's eviction, the count of pages in use) skips pieces that hold no
    // live folio: an empty chunk costs O(pieces), not O(pages). Changed only together with
    // _liveFolios, and only after the ref was taken (so never for a page the kill refused).
    private readonly int[] _livePerPiece;

    private int PieceOf(ulong pfn) => (int)((pfn - FirstPfn) >> Page.PmdOrder);

    /// <summary>
    /// Whether the 2 MiB piece of the range holding <paramref name="pfn"/> has no live device folio:
    /// none of its pages is initialised, mapped or on its way to <see cref="IDevPagemapOps.PageFree"/>,
    /// so a walk for pages in use may skip the piece (a page initialised concurrently is seen by the
    /// next walk, as a page whose refcount a walk read just before it was set).
    /// </summary>
    public bool IsPieceIdle(ulong pfn) => Volatile.Read(ref _livePerPiece[PieceOf(CheckPfn(pfn))]) == 0;

    /// <summary>
    /// Base pages in use (refcount non-zero; a 2 MiB folio counts 512): what an eviction of the
    /// range migrates. Walks only the pieces holding a live folio.
    /// </summary>
    public long BasePagesInUse
    {
        get
        {
            long n = 0;
            var frames = Machine.Frames;
            for (ulong piece = FirstPfn, end = FirstPfn + PageCount; piece < end; piece += Page.PmdPages)
            {
                if (Volatile.Read(ref _livePerPiece[PieceOf(piece)]) == 0) continue;
                ulong pieceEnd = Math.Min(piece + Page.PmdPages, end);
                for (ulong pfn = piece; pfn < pieceEnd;)
                {
                    if (frames.RefCount(pfn) == 0) { pfn++; continue; }
                    ulong pages = 1UL << frames.Order(pfn);
                    n += (long)pages;
                    pfn += pages;
                }
            }
            return n;
        }
    }

    private void AddPieceLive(ulong pfn, ulong count)
    {
        // count consecutive base pages from pfn (InitPages), or one folio (count 1).
        ulong end = pfn + count;
        while (pfn < end)
        {
            ulong pieceEnd = Math.Min(end, (((pfn - FirstPfn) >> Page.PmdOrder) + 1 << Page.PmdOrder) + FirstPfn);
            Interlocked.Add(ref _livePerPiece[PieceOf(pfn)], (int)(pieceEnd - pfn));
            pfn = pieceEnd;
        }
    }

    /// <summary>percpu_ref_tryget_live (percpu_ref_tryget_many for <paramref name="n"/>): <paramref name="n"/> more live folios, unless removal killed the ref.</summary>
    private bool TryGetLive(long n = 1)
    {
        long seen = Volatile.Read(ref _liveFolios);
        while ((seen & Killed) == 0)
        {
            long was = Interlocked.CompareExchange(ref _liveFolios, seen + n, seen);
            if (was == seen) return true;
            seen = was;
        }
        return false;
    }

    /// <summary>Takes <paramref name="n"/> references for folios that became independent (a device THP split of the folio at <paramref name="head"/>).</summary>
    internal void GetLive(ulong head, int n)
    {
        Interlocked.Add(ref _liveFolios, n);
        Interlocked.Add(ref _livePerPiece[PieceOf(head)], n);
    }

    /// <summary>put_dev_pagemap at the end of free_zone_device_folio of the folio at <paramref name="pfn"/>.</summary>
    internal void PutLive(ulong pfn)
    {
        Interlocked.Decrement(ref _livePerPiece[PieceOf(pfn)]);
        if ((Interlocked.Decrement(ref _liveFolios) & ~Killed) < 0)
            throw new KernelBugException("PAGE-R01", $"{this}: more device folios freed than initialised");
    }

    /// <summary>Whether the range was unplugged.</summary>
    public bool IsRemoved { get; private set; }

    /// <summary>Whether <paramref name="pfn"/> is one of this range's pages.</summary>
    public bool Contains(ulong pfn) => pfn - FirstPfn < PageCount;

    /// <summary>Pages with a non-zero refcount.</summary>
    public long PagesInUse
    {
        get
        {
            long n = 0;
            for (ulong pfn = FirstPfn; pfn < FirstPfn + PageCount; pfn++)
                if (Machine.Frames.RefCount(pfn) != 0) n++;
            return n;
        }
    }

    /// <summary>folio_order of the device folio headed at <paramref name="pfn"/> (0 or 9); valid in <see cref="IDevPagemapOps.PageFree"/>.</summary>
    public int FolioOrder(ulong pfn) => Machine.Frames.Order(CheckPfn(pfn));

    /// <summary>page_ref_count of a device page.</summary>
    public int RefCount(ulong pfn) => Machine.Frames.RefCount(CheckPfn(pfn));

    /// <summary>
    /// zone_device_page_init / zone_device_folio_init: prepares the free device page (or 2 MiB
    /// folio, <paramref name="order"/> 9) at <paramref name="pfn"/> as a migration destination:
    /// refcount 1 and locked. The page must be free (refcount 0) — reusing one before its
    /// <see cref="IDevPagemapOps.PageFree"/> is MIG-R10.
    /// </summary>
    public void InitPage([PageInit] ulong pfn, int order = 0)
    {
        CheckPfn(pfn);
        if (order != 0 && order != Page.PmdOrder) throw new ArgumentOutOfRangeException(nameof(order));
        if (order != 0 && ((pfn - FirstPfn) & (Page.PmdPages - 1)) != 0) throw new ArgumentException("a 2 MiB device folio must be 2 MiB aligned", nameof(pfn));
        var frames = Machine.Frames;
        for (ulong i = 0; i < (1UL << order); i++)
        {
            // A page still in use (its folio referenced) must not be handed out again.
            ulong head = frames.FolioHead(pfn + i);
            if (frames.RefCount(head) != 0)
                throw new KernelBugException("MIG-R10", $"device page 0x{pfn + i:x} initialised while still in use (folio 0x{head:x} refcount {frames.RefCount(head)})");
        }
        // zone_device_page_init: WARN_ON(!percpu_ref_tryget_many(&pgmap->ref)) — atomically
        // against memunmap_pages killing the ref, so removal cannot unplug a page being handed out.
        if (IsRemoving || !TryGetLive()) throw new KernelBugException("MIG-R10", $"device page 0x{pfn:x} initialised while its pagemap is being removed");
        AddPieceLive(pfn, 1);
        // A free 2 MiB folio reused as base pages (the driver carves the block up): its old tails
        // are free pages now, not tails of the new order-0 page (zone_device_page_init reinitialises them).
        if (order == 0 && frames.Order(pfn) != 0 && (frames.Flags(pfn) & PageFlags.Tail) == 0)
            for (ulong i = 1; i < (1UL << frames.Order(pfn)); i++) frames.Flags(pfn + i) = PageFlags.Device;
        for (ulong i = 1; i < (1UL << order); i++) frames.Flags(pfn + i) = PageFlags.Device | PageFlags.Tail;
        frames.Flags(pfn) = PageFlags.Device | PageFlags.Locked | (order != 0 ? PageFlags.Head : 0);
        frames.Order(pfn) = (byte)order;
        frames.MapCount(pfn) = 0;
        frames.EntireMapCount(pfn) = 0;
        frames.PinCount(pfn) = 0;
        frames.RefCount(pfn) = 1;
    }

    /// <summary>
    /// <see cref="InitPage"/> for <paramref name="count"/> consecutive free base pages from
    /// <paramref name="pfn"/> at once, as the kernel initialises a large device folio's pages in
    /// one pass (zone_device_folio_init: one percpu_ref_tryget_many for the lot): the run is
    /// checked free first, then takes its pagemap references in one step and every page becomes
    /// an order-0 destination, refcount 1 and locked. All or nothing: a page still in use
    /// (MIG-R10) throws before any page changed. Allocation-free.
    /// </summary>
    public void InitPages(ulong pfn, int count)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count));
        CheckPfn(pfn);
        if ((ulong)count > PageCount - (pfn - FirstPfn)) throw new ArgumentOutOfRangeException(nameof(count), $"{count} pages from 0x{pfn:x} run past the end of {this}");
        var frames = Machine.Frames;
        ulong end = pfn + (ulong)count;
        for (ulong p = pfn; p < end; p++)
        {
            ulong head = frames.FolioHead(p);
            if (frames.RefCount(head) != 0)
                throw new KernelBugException("MIG-R10", $"device page 0x{p:x} initialised while still in use (folio 0x{head:x} refcount {frames.RefCount(head)})");
        }
        if (IsRemoving || !TryGetLive(count)) throw new KernelBugException("MIG-R10", $"device page 0x{pfn:x} initialised while its pagemap is being removed");
        AddPieceLive(pfn, (ulong)count);
        for (ulong p = pfn; p < end; p++)
        {
            // A free 2 MiB folio carved into base pages: its old tails become free pages (as InitPage).
            if (frames.Order(p) != 0 && (frames.Flags(p) & PageFlags.Tail) == 0)
                for (ulong i = 1; i < (1UL << frames.Order(p)); i++)
                    if (p + i >= end) frames.Flags(p + i) = PageFlags.Device;
            frames.Flags(p) = PageFlags.Device | PageFlags.Locked;
            frames.Order(p) = 0;
            frames.MapCount(p) = 0;
            frames.EntireMapCount(p) = 0;
            frames.PinCount(p) = 0;
            frames.RefCount(p) = 1;
        }
    }

    /// <summary>
    /// The device's own view of a device page's bytes (its local memory). For private memory
    /// this is the only way to reach them; drivers and copy engines use it, the CPU cannot.
    /// </summary>
    public Span<byte> DeviceBytes(ulong pfn, int order = 0) => new(_bytes.PageAddress(CheckPfn(pfn)), Page.Size << order);

    internal byte* Address(ulong pfn) => _bytes.PageAddress(pfn);

    /// <summary>
    /// memunmap_pages: unplugs the range. Fails with EBUSY while any page is still referenced —
    /// evict mapped pages first (<c>MigrateDevice.EvictAndRemove</c> does both).
    /// </summary>
    [MayBlock]
    public Errno Remove()
    {
        if (IsRemoved) throw new KernelBugException("DEV-R01", $"device memory 0x{FirstPfn:x} removed twice");
        IsRemoving = true;
        // percpu_ref_kill, then wait for the last folio's free to finish (the simulator returns
        // EBUSY instead of waiting; the caller retries the removal later).
        Interlocked.Or(ref _liveFolios, Killed);
        if ((Volatile.Read(ref _liveFolios) & ~Killed) != 0) return Errno.EBUSY;
        DeviceMemoryRegistry.For(Machine).Remove(this);
        IsRemoved = true;
        _bytes.Dispose();
        return Errno.Ok;
    }

    private ulong CheckPfn(ulong pfn)
    {
        if (!Contains(pfn)) throw new ArgumentOutOfRangeException(nameof(pfn), $"pfn 0x{pfn:x} is not in device range [0x{FirstPfn:x}, +0x{PageCount:x})");
        if (IsRemoved) throw new ObjectDisposedException(nameof(DevPagemap), "the device memory was removed");
        return pfn;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Kind} device memory [0x{FirstPfn:x}, +0x{PageCount:x})";
}
