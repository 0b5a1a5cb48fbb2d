using Hmm.Runtime.Scheduling;
using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.TestHmm;

/// <summary>
/// Simulates <c>struct dmirror_device</c> of lib/test_hmm.c — one <c>/dev/hmm_dmirrorN</c> char
/// device (reference/kernel-hmm.md E): minors 0 and 1 own MEMORY_DEVICE_PRIVATE memory, minors
/// 2 and 3 MEMORY_DEVICE_COHERENT memory. Device memory comes in <see cref="ChunkSize"/> chunks
/// created on demand, handed out from two free lists (base pages and 2 MiB folios) under the
/// device spinlock, with <see cref="Calloc"/>/<see cref="Cfree"/> counters.
/// </summary>
/// <remarks>
/// <para>Locks (E.2): <c>devmem_lock</c> (a mutex, the chunk array) is taken before
/// <c>lock</c> (a spinlock, the free lists and counters). Migrations take the mmap lock first
/// and may then create a chunk (mmap_lock → devmem_lock); eviction holds devmem_lock while its
/// CLEAR invalidations take each mirror's update lock (devmem_lock → U).</para>
/// <para>Coherent devices: the kernel creates them only when the module parameters
/// <c>spm_addr_dev0</c>/<c>spm_addr_dev1</c> give physical addresses of special-purpose memory,
/// with the quirk that minor 2 uses <c>spm_addr_dev1</c> and minor 3 <c>spm_addr_dev0</c>. The
/// simulator places each chunk itself, so the quirk has no visible effect; what it keeps is that
/// the SPM region is one fixed chunk: a coherent device can hold only one chunk at a time (a
/// second memremap_pages of the same address fails), so a 2 MiB allocation on a coherent device
/// whose initial chunk holds only base pages fails and falls back to base pages.</para>
/// </remarks>
public sealed class DmirrorDevice
{
    /// <summary>DEVMEM_CHUNK_SIZE: 256 MiB per chunk.</summary>
    public const ulong ChunkSize = 256UL << 20;

    /// <summary>DEVMEM_CHUNKS_RESERVE: the chunk array grows by 16.</summary>
    public const int ChunksReserve = 16;

    /// <summary>DMIRROR_NDEVICES.</summary>
    public const int DeviceCount = 4;

    private readonly KernelMutex _devmemLock = new("dmirror.devmem_lock");
    private readonly Hmm.Runtime.Locking.SpinLock _lock = new("dmirror.device.lock");

    [GuardedBy(nameof(_devmemLock))] private readonly List<DmirrorChunk> _chunks = new();
    [GuardedBy(nameof(_devmemLock))] private readonly List<DmirrorChunk> _unplugPending = new();
    [GuardedBy(nameof(_devmemLock))] private int _capacity;
    [GuardedBy(nameof(_lock))] private readonly Stack<(DmirrorChunk Chunk, ulong Pfn)> _freePages = new();
    [GuardedBy(nameof(_lock))] private readonly Stack<(DmirrorChunk Chunk, ulong Pfn)> _freeFolios = new();
    [GuardedBy(nameof(_lock))] private readonly Dictionary<ulong, int> _largeBackingLive = new();
    [GuardedBy(nameof(_lock))] private long _calloc;
    [GuardedBy(nameof(_lock))] private long _cfree;

    private DmirrorDevice(Machine machine, int minor, ulong chunkBytes)
    {
        ChunkBytes = chunkBytes;
        Machine = machine;
        Minor = minor;
        Kind = minor < 2 ? DevicePageKind.Private : DevicePageKind.Coherent;
        Copy = new CopyEngine(machine);
        Mapping = new DeviceFileMapping(machine);
    }

    /// <summary>
    /// dmirror_device_init: creates device <paramref name="minor"/> (0..3) on
    /// <paramref name="machine"/> and allocates its first chunk, all of it as base pages on the
    /// free list (no page taken).
    /// </summary>
    public static DmirrorDevice Create(Machine machine, int minor) => Create(machine, minor, ChunkSize);

    /// <summary>
    /// Like <see cref="Create(Machine, int)"/> with chunks of <paramref name="chunkBytes"/> (a
    /// multiple of 2 MiB) instead of <see cref="ChunkSize"/>: race scenarios build a device per
    /// schedule, and 65,536 struct pages per chunk would dominate their cost.
    /// </summary>
    public static DmirrorDevice Create(Machine machine, int minor, ulong chunkBytes)
    {
        ArgumentOutOfRangeException.ThrowIfZero(chunkBytes);
        if (chunkBytes % (2UL << 20) != 0) throw new ArgumentOutOfRangeException(nameof(chunkBytes), "a multiple of 2 MiB");
        ArgumentNullException.ThrowIfNull(machine);
        ArgumentOutOfRangeException.ThrowIfNegative(minor);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(minor, DeviceCount);
        var device = new DmirrorDevice(machine, minor, chunkBytes);
        var e = device.AllocateChunk(take: false, large: false, out _, out _);
        if (e != Errno.Ok) throw new ErrnoException(e, "dmirror_allocate_chunk");
        return device;
    }

    /// <summary>Bytes of device memory per chunk (<see cref="ChunkSize"/> unless created smaller).</summary>
    public ulong ChunkBytes { get; }

    /// <summary>The machine the device is plugged into.</summary>
    public Machine Machine { get; }

    /// <summary>The char device minor (0..3).</summary>
    public int Minor { get; }

    /// <summary>mdevice->zone_device_type.</summary>
    public DevicePageKind Kind { get; }

    /// <summary>The device's DMA engine (the only host-side path to private device memory).</summary>
    public CopyEngine Copy { get; }

    /// <summary>mdevice->calloc: device pages handed out.</summary>
    public long Calloc { get { _lock.Lock(); try { return _calloc; } finally { _lock.Unlock(); } } }

    /// <summary>mdevice->cfree: device pages given back (not counted while a chunk is being removed).</summary>
    public long Cfree { get { _lock.Lock(); try { return _cfree; } finally { _lock.Unlock(); } } }

    /// <summary>mdevice->devmem_count: chunks currently plugged.</summary>
    public int ChunkCount { get { _devmemLock.Lock(); try { return _chunks.Count; } finally { _devmemLock.Unlock(); } } }

    /// <summary>mdevice->devmem_capacity.</summary>
    public int ChunkCapacity { get { _devmemLock.Lock(); try { return _capacity; } finally { _devmemLock.Unlock(); } } }

    /// <summary>Free base pages and free 2 MiB folios on the lists.</summary>
    public (int Pages, int Folios) FreeListLengths { get { _lock.Lock(); try { return (_freePages.Count, _freeFolios.Count); } finally { _lock.Unlock(); } } }

    internal DeviceFileMapping Mapping { get; }

    internal bool IsPrivate => Kind == DevicePageKind.Private;

    /// <summary>dmirror_select_device: the migrate_vma selector for this device's memory.</summary>
    internal MigrateSelect SelectDevice => IsPrivate ? MigrateSelect.DevicePrivate : MigrateSelect.DeviceCoherent;

    /// <summary>
    /// dmirror_fops_open: a mirror of <paramref name="process"/>'s address space (an interval
    /// notifier over [0, ULONG_MAX &amp; PAGE_MASK)). May sleep; call without the mmap lock.
    /// </summary>
    public Dmirror Open(Process process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return new Dmirror(this, process);
    }

    /// <summary>
    /// dmirror_fops_mmap: maps <paramref name="length"/> bytes of the device file into
    /// <paramref name="process"/> (shared, read/write): zeroed kernel pages vm_insert_page'd into a
    /// mixed map. Those pages have no anonymous mapping, so migrate_vma never collects them.
    /// Throws <see cref="ErrnoException"/> as mmap(2) fails.
    /// </summary>
    public ulong MmapDeviceFile(Process process, ulong length)
        => MmapDeviceFile(process, length, Prot.Read | Prot.Write, MapFlags.Shared);

    /// <summary>
    /// dmirror_fops_mmap with the caller's mmap(2) <paramref name="prot"/> and
    /// <paramref name="flags"/> (MAP_SHARED or MAP_PRIVATE, optionally MAP_FIXED). In a
    /// MAP_PRIVATE mapping the inserted pages are mapped copy-on-write (vm_page_prot is PAGE_COPY):
    /// a device snapshot sees them read-only and a CPU write gets a private anonymous copy, as
    /// hmm-tests' "mixedmap" expects. Throws <see cref="ErrnoException"/> as mmap(2) fails.
    /// </summary>
    public ulong MmapDeviceFile(Process process, ulong length, Prot prot, MapFlags flags, ulong addr = 0)
    {
        ArgumentNullException.ThrowIfNull(process);
        return process.MmapDevice(length, prot, flags, Mapping, addr);
    }

    /// <summary>
    /// dmirror_devmem_alloc_page: a device page (or 2 MiB folio when <paramref name="large"/>),
    /// initialised (refcount 1, locked) as a migration destination, with a fresh backing
    /// page/folio for private memory. Pops the matching free list, or creates a chunk when it is
    /// empty. False when no memory is left.
    /// </summary>
    internal bool AllocPage(Dmirror mirror, bool large, out ulong dpfn)
    {
        int order = large ? Page.PmdOrder : 0;
        dpfn = 0;
        ulong rpage = 0;
        if (FaultInjection.Fails(large ? FaultSite.DeviceLargePage : FaultSite.DevicePage)) return false;
        if (IsPrivate && !SystemPages.TryAllocateKernelPage(Machine, order, zero: false, out rpage)) return false;

        DmirrorChunk? chunk = null;
        _lock.Lock();
        try
        {
            var list = large ? _freeFolios : _freePages;
            if (list.TryPop(out var top))
            {
                (chunk, dpfn) = top;
                _calloc += 1L << order;
                // Initialised before the spinlock is dropped: RemoveChunks marks a chunk removing
                // and drops its free pages under this lock, so a page taken here is either in use
                // (refcount 1) by the time removal looks at it, or never taken at all. Initialising
                // it after unlocking raced with the unplug (InitPage on a removed pagemap).
                chunk.Pgmap.InitPage(dpfn, order);
            }
        }
        finally { _lock.Unlock(); }

        if (chunk == null && AllocateChunk(take: true, large, out chunk, out dpfn) != Errno.Ok)
        {
            if (rpage != 0) SystemPages.PutKernelPage(Machine, rpage);
            return false;
        }
        chunk!.SetPageData(dpfn, order, rpage, mirror);
        if (large && rpage != 0)
        {
            _lock.Lock();
            try { _largeBackingLive[rpage] = Page.PmdPages; }
            finally { _lock.Unlock(); }
        }
        return true;
    }

    /// <summary>The rest of dmirror_devmem_free, after the chunk cleared the page's data.</summary>
    internal void FreeDevicePage(DmirrorChunk chunk, ulong pfn, int order, ulong backingHead)
    {
        bool freeBacking = false;
        _lock.Lock();
        try
        {
            if (backingHead != 0)
            {
                if (_largeBackingLive.TryGetValue(backingHead, out int live))
                {
                    live -= 1 << order;
                    if (live <= 0) { _largeBackingLive.Remove(backingHead); freeBacking = true; }
                    else _largeBackingLive[backingHead] = live;
                }
                else freeBacking = true;
            }
            if (!chunk.Removing)
            {
                _cfree += 1L << order;
                (order != 0 ? _freeFolios : _freePages).Push((chunk, pfn));
            }
        }
        finally { _lock.Unlock(); }
        // __free_pages(rpage) outside the spinlock.
        if (freeBacking) SystemPages.PutKernelPage(Machine, backingHead);
    }

    /// <summary>
    /// dmirror_allocate_chunk: memremap_pages of one more chunk (owner = this device, ops = the
    /// chunk), its pages pushed on the free lists — PMD-aligned runs of 512 on the folio list
    /// when a large allocation asked for it — and, when <paramref name="take"/>, one page or
    /// folio taken for the caller. ENOMEM when a coherent device already has its chunk.
    /// </summary>
    private Errno AllocateChunk(bool take, bool large, out DmirrorChunk? taken, out ulong dpfn)
    {
        taken = null;
        dpfn = 0;
        var chunk = new DmirrorChunk(this);
        _devmemLock.Lock();
        try
        {
            if (!IsPrivate && _chunks.Count > 0) return Errno.ENOMEM;   // the one SPM region is already mapped
            if (_chunks.Count == _capacity) _capacity += ChunksReserve;
            var e = DevPagemap.Create(Machine, Kind, ChunkBytes, owner: this, ops: chunk, out var pgmap);
            if (e != Errno.Ok) return e;
            chunk.Attach(pgmap!);
            _chunks.Add(chunk);
        }
        finally { _devmemLock.Unlock(); }

        ulong first = chunk.Pgmap.FirstPfn, last = first + chunk.Pgmap.PageCount;
        _lock.Lock();
        try
        {
            // A RemoveChunks that ran since the chunk was plugged has already unplugged it.
            if (chunk.Removing) return Errno.ENOMEM;
            for (ulong pfn = first; pfn < last;)
            {
                if (large && (pfn & (Page.PmdPages - 1)) == 0 && pfn + Page.PmdPages <= last)
                {
                    _freeFolios.Push((chunk, pfn));
                    pfn += Page.PmdPages;
                    continue;
                }
                _freePages.Push((chunk, pfn));
                pfn++;
            }
            if (!take) return Errno.Ok;
            var list = large ? _freeFolios : _freePages;
            if (!list.TryPop(out var top)) return Errno.ENOMEM;
            (taken, dpfn) = top;
            _calloc += large ? Page.PmdPages : 1;
            taken.Pgmap.InitPage(dpfn, large ? Page.PmdOrder : 0);   // under the lock, as in AllocPage
            return Errno.Ok;
        }
        finally { _lock.Unlock(); }
    }

    /// <summary>
    /// dmirror_device_remove_chunks (the RELEASE ioctl and close): for every chunk, under
    /// devmem_lock, mark it removing and drop its free pages (under the spinlock), evict every
    /// page still in use back to system memory with its data (<see cref="EvictChunk"/>), then
    /// memunmap it. Afterwards the device has no chunks; new ones are created on demand.
    /// </summary>
    internal void RemoveChunks()
    {
        _devmemLock.Lock();
        try
        {
            // Chunks an earlier removal could not unplug yet (a page was still held).
            for (int i = _unplugPending.Count - 1; i >= 0; i--)
            {
                EvictChunk(_unplugPending[i]);
                if (_unplugPending[i].Pgmap.Remove() == Errno.Ok) _unplugPending.RemoveAt(i);
            }
            foreach (var chunk in _chunks)
            {
                _lock.Lock();
                try
                {
                    chunk.Removing = true;
                    DropFreePages(chunk);
                }
                finally { _lock.Unlock(); }
                EvictChunk(chunk);
                // memunmap_pages waits for the last reference; a page someone still holds (a pin,
                // a page locked when eviction tried it) keeps the range until a later removal.
                if (chunk.Pgmap.Remove() != Errno.Ok) _unplugPending.Add(chunk);
            }
            _chunks.Clear();
            _capacity = 0;
            _lock.Lock();
            try
            {
                _freePages.Clear();
                _freeFolios.Clear();
            }
            finally { _lock.Unlock(); }
        }
        finally { _devmemLock.Unlock(); }
    }

    /// <summary>dmirror_remove_free_pages: unlinks the chunk's pages from both free lists.</summary>
    private void DropFreePages(DmirrorChunk chunk)
    {
        Filter(_freePages, chunk);
        Filter(_freeFolios, chunk);

        static void Filter(Stack<(DmirrorChunk Chunk, ulong Pfn)> list, DmirrorChunk chunk)
        {
            var keep = list.Where(e => e.Chunk != chunk).Reverse().ToArray();
            list.Clear();
            foreach (var e in keep) list.Push(e);
        }
    }

    /// <summary>
    /// dmirror_device_evict_chunk: migrate_device_range over the chunk, a system page (or 2 MiB
    /// folio) per collected page filled from its backing page, migrate_device_pages,
    /// migrate_device_finalize. CPU mappings end up on the new pages with the same data.
    /// </summary>
    private void EvictChunk(DmirrorChunk chunk)
    {
        var pgmap = chunk.Pgmap;
        var src = new ulong[Page.PmdPages];
        var dst = new ulong[Page.PmdPages];
        for (ulong at = pgmap.FirstPfn; at < pgmap.FirstPfn + pgmap.PageCount; at += Page.PmdPages)
        {
            Array.Clear(dst);
            MigrateDevice.Range(Machine, src, at);
            for (int i = 0; i < src.Length; i++)
            {
                ulong s = src[i];
                if ((s & MigratePfn.Migrate) == 0 || !MigratePfn.IsValid(s)) continue;
                ulong spfn = s >> MigratePfn.Shift;
                bool compound = (s & MigratePfn.Compound) != 0;
                int order = compound ? Page.PmdOrder : 0;
                // GFP_NOFAIL in the kernel; out of RAM here, the page stays on the device.
                if (!SystemPages.TryAllocateLocked(Machine, order, out ulong page)) continue;
                Copy.Copy([new PageCopy(chunk.BackingOf(spfn), page, order)]);
                dst[i] = MigratePfn.FromPfn(page) | (s & MigratePfn.Write) | (compound ? MigratePfn.Compound : 0);
            }
            if (!src.AsSpan().ContainsAnyExcept(0UL)) continue;   // nothing in use here
            MigrateDevice.Pages(Machine, src, dst);
            MigrateDevice.Finalize(Machine, src, dst);
        }
    }

    /// <summary>
    /// dmirror_devmem_fault (migrate_to_ram): a CPU touched one of this device's private pages.
    /// Migrates the faulting page — or the whole 2 MiB device folio when it is PMD-mapped — back
    /// to system memory with <c>fault_page</c> set, on behalf of the mirror that migrated it (its
    /// flags, its device page table, which the copy erases since own MIGRATE events are
    /// filtered). Setup failure → SIGBUS; allocation failure → finalize and OOM.
    /// </summary>
    internal VmFaultResult MigrateToRam(DmirrorChunk chunk, in VmFault vmf)
    {
        var mirror = chunk.MirrorOf(vmf.Page);
        if (mirror == null) return VmFaultResult.SigBus;
        int order = chunk.Pgmap.FolioOrder(vmf.Page);
        // vmf->pte set (a PTE mapping): only the faulting page, whatever the folio size.
        if (!vmf.Mm.EntryAt(vmf.Address).IsHuge) order = 0;
        int n = 1 << order;
        ulong start = vmf.Address & ~((ulong)(Page.Size << order) - 1);
        using var args = new MigrateVma
        {
            Vma = vmf.Vma,
            Start = start,
            End = start + ((ulong)n << Page.Shift),
            Src = new ulong[n],
            Dst = new ulong[n],
            PgmapOwner = this,
            Flags = SelectDevice | (order != 0 ? MigrateSelect.Compound : 0),
            FaultPage = vmf.Page,
        };
        if (MigrateVma.Setup(args) != Errno.Ok) return VmFaultResult.SigBus;
        if (mirror.AllocAndCopyToSystem(args, n) != Errno.Ok)
        {
            MigrateVma.Finalize(args);
            return VmFaultResult.Oom;
        }
        MigrateVma.Pages(args);
        // No device-side finalize: the copy already erased the device mappings.
        MigrateVma.Finalize(args);
        return VmFaultResult.Ok;
    }

    /// <summary>
    /// The device's view of a page its page table maps: private pages of this device are read
    /// through their backing page. (test_hmm would kmap the device page itself on the rare path
    /// where hmm_range_fault reported its own private page; the simulator reads the bytes the
    /// device really holds.)
    /// </summary>
    internal ulong DeviceView(ulong pfn)
    {
        var pgmap = DevPagemap.Of(Machine, pfn);
        if (pgmap == null || pgmap.Kind != DevicePageKind.Private || pgmap.Owner != this || pgmap.Ops is not DmirrorChunk chunk) return pfn;
        return chunk.BackingOf(pfn);
    }

    /// <summary>BACKING_PAGE of a destination this device just allocated.</summary>
    internal ulong BackingOf(ulong dpfn)
    {
        if (!IsPrivate) return dpfn;
        var pgmap = DevPagemap.Of(Machine, dpfn);
        return pgmap?.Ops is DmirrorChunk chunk ? chunk.BackingOf(dpfn) : dpfn;
    }

    /// <inheritdoc/>
    public override string ToString() => $"hmm_dmirror{Minor} ({Kind})";
}
