using System.Runtime.CompilerServices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

/// <summary>
/// The simulated machine: system RAM (one memory node with its struct-page metadata and frame
/// allocator), the shared zero pages, the hugetlb pool, the processes and the files.
/// </summary>
public sealed unsafe partial class Machine : IDisposable
{
    private readonly List<Process> _processes = new();
    private readonly List<SimFile> _files = new();
    // Owner id → anon_vma / file / pgmap. Readers (rmap walks on the migration path) index the
    // array without a lock; writers hold _ownerLock and publish a grown copy, so a reader sees
    // either the old or the new array, both valid for every id handed out before.
    private object?[] _owners = new object?[64];
    private int _ownerCount = 1;
    private readonly Stack<int> _freeOwnerIds = new();
    private readonly KernelMutex _tasklist = new("machine.tasklist");
    private readonly SpinLock _ownerLock = new("machine.owners");
    private readonly Stack<ulong> _hugeTlbFree = new();
    private int _nextPid;

    /// <summary>Boots a machine with <paramref name="options"/> (defaults: 1 GiB RAM, lock validation on).</summary>
    public Machine(MachineOptions? options = null)
    {
        Options = options ?? new MachineOptions();
        long bytes = Options.SystemMemory;
        if (bytes < 8L << 20 || bytes % (long)Page.PmdSize != 0)
            throw new ArgumentException($"SystemMemory must be a multiple of 2 MiB and at least 8 MiB, not {bytes}", nameof(options));
        LockValidator.Enabled = Options.LockValidation;
        // The mm/rmap.c lock order, declared so an inversion is reported on first sight:
        // mmap_lock → (folio lock, not a validator class here) → anon_vma rwsem → page-table lock.
        if (Options.LockValidation) LockValidator.DeclareOrder("mm.MmapLock", AnonVma.LockClass, "mm.page_table_lock");
        ulong pages = (ulong)bytes >> Page.Shift;
        Memory = new PhysicalMemory(0, pages);
        Frames = new PageFrames();
        Frames.Online(0, (pages + PageFrames.SectionPages - 1) & ~(PageFrames.SectionPages - 1));
        Allocator = new FrameAllocator(Frames, 0, (int)(pages / Page.PmdPages));

        // The first 2 MiB block is the huge zero page; its first page doubles as ZERO_PAGE(0).
        if (!Allocator.TryAllocate(Page.PmdOrder, out ulong zero) || zero != 0)
            throw new InvalidOperationException("the zero pages must be the first block");
        for (ulong i = 0; i < Page.PmdPages; i++) Frames.Flags(i) = PageFlags.Reserved | PageFlags.Zero | (i == 0 ? PageFlags.Head : PageFlags.Tail);
        Frames.Order(0) = Page.PmdOrder;
        BootReservedPages = Page.PmdPages;

        for (int i = 0; i < Options.HugeTlbPages; i++)
        {
            if (!Allocator.TryAllocate(Page.PmdOrder, out ulong huge))
                throw new ArgumentException($"HugeTlbPages {Options.HugeTlbPages} does not fit in {bytes} bytes of RAM", nameof(options));
            Frames.RefCount(huge) = 0;
            _hugeTlbFree.Push(huge);
        }
    }

    /// <summary>The options the machine was built with.</summary>
    public MachineOptions Options { get; }

    /// <summary>System RAM bytes (memory node 0).</summary>
    internal PhysicalMemory Memory { get; }

    /// <summary>struct page metadata for every online pfn.</summary>
    internal PageFrames Frames { get; }

    /// <summary>The buddy allocator of system RAM.</summary>
    internal FrameAllocator Allocator { get; }

    /// <summary>my_zero_pfn(): the shared zero page.</summary>
    internal const ulong ZeroPfn = 0;

    /// <summary>The huge zero page (first pfn).</summary>
    internal const ulong HugeZeroPfn = 0;

    /// <summary>Pages taken at boot (the zero pages), never freed.</summary>
    public long BootReservedPages { get; }

    /// <summary>Total pages of system RAM.</summary>
    public long TotalPages => Allocator.TotalPages;

    /// <summary>Free pages of system RAM (the hugetlb pool counts as used).</summary>
    public long FreePages => Allocator.FreePages;

    /// <summary>Pages allocated beyond the boot reservation and the hugetlb pool.</summary>
    public long UsedPages => TotalPages - FreePages - BootReservedPages - (long)Options.HugeTlbPages * Page.PmdPages;

    /// <summary>Free 2 MiB pages left in the hugetlb pool (HugePages_Free).</summary>
    public int HugeTlbFreePages => _hugeTlbFree.Count;

    /// <summary>The live processes.</summary>
    public IReadOnlyList<Process> Processes
    {
        get
        {
            _tasklist.Lock();
            try { return _processes.ToArray(); }
            finally { _tasklist.Unlock(); }
        }
    }

    /// <summary>Creates a process with an empty address space.</summary>
    public Process CreateProcess(string name)
    {
        _tasklist.Lock();
        try
        {
            int pid = ++_nextPid;
            var p = new Process(this, name, new AddressSpace(this, pid), pid);
            _processes.Add(p);
            return p;
        }
        finally { _tasklist.Unlock(); }
    }

    internal void ForgetProcess(Process p)
    {
        _tasklist.Lock();
        try { _processes.Remove(p); }
        finally { _tasklist.Unlock(); }
    }

    /// <summary>Creates a file of <paramref name="size"/> bytes (zero-filled, fixed size) whose page cache lives in this machine's RAM.</summary>
    public SimFile CreateFile(ulong size, string? name = null)
    {
        if (size == 0) throw new ArgumentOutOfRangeException(nameof(size), "a file needs at least one byte");
        return RegisterFile(size, internalObject: false, order: 0, name);
    }

    internal SimFile RegisterFile(ulong size, bool internalObject, int order, string? name)
    {
        SimFile? file = null;
        int id = AllocateOwnerId(null);
        file = new SimFile(this, size, id, internalObject, order, name ?? (internalObject ? $"shmem#{id}" : $"file#{id}"));
        SetOwner(id, file);
        _tasklist.Lock();
        try { _files.Add(file); }
        finally { _tasklist.Unlock(); }
        return file;
    }

    internal void ForgetFile(SimFile file)
    {
        _tasklist.Lock();
        try { _files.Remove(file); }
        finally { _tasklist.Unlock(); }
        FreeOwnerId(file.Id);
    }

    /// <summary>page_address: the bytes of a CPU-addressable pfn.</summary>
    internal byte* PageAddress(ulong pfn)
    {
        if (Memory.Contains(pfn)) return Memory.PageAddress(pfn);
        if (DeviceMemory is { } dev) return dev.CpuAddress(pfn);
        throw new KernelBugException("PAGE-R02", $"pfn 0x{pfn:x} is not CPU-addressable memory");
    }

    /// <summary>copy_highpage for 2^order pages.</summary>
    internal void CopyPages(ulong dstPfn, ulong srcPfn, int order)
    {
        int bytes = Page.Size << order;
        Buffer.MemoryCopy(PageAddress(srcPfn), PageAddress(dstPfn), bytes, bytes);
    }

    /// <summary>
    /// The pgmap owner cookie of a device-private page (page_pgmap(page)->owner), or null when
    /// <paramref name="pfn"/> is not device-private memory.
    /// </summary>
    internal object? DevicePrivateOwner(ulong pfn)
        => DeviceMemory is { } dev && dev.Classify(pfn) == DevicePageClass.Private ? dev.PgmapOwner(pfn) : null;

    /// <summary>
    /// folio_get: takes a reference on a folio the caller already knows to be live — it holds a
    /// reference, the folio lock, or the PTL over an entry mapping it. A folio whose refcount is
    /// 0 is free or frozen by a split (<see cref="TryFreezeRefs"/>); getting it is a bug
    /// (VM_BUG_ON_FOLIO in folio_get), as it would be lost when the split unfreezes the count.
    /// Paths that may meet a frozen folio use <see cref="TryGetPage"/>.
    /// </summary>
    internal void GetPage(ulong head)
    {
        if (Interlocked.Increment(ref Frames.RefCount(head)) == 1 && (Frames.Flags(head) & PageFlags.Reserved) == 0)
            ThrowGetOnZero(head);
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowGetOnZero(ulong head)
    {
        Interlocked.Decrement(ref Frames.RefCount(head));
        throw new KernelBugException("PAGE-R01", $"folio_get on pfn 0x{head:x} whose refcount is 0 (free, or frozen by a split): use folio_try_get");
    }

    /// <summary>
    /// folio_try_get: takes a reference unless the refcount is 0 — the folio is free or a split
    /// froze it (<see cref="TryFreezeRefs"/>). Every speculative reference (a page found through
    /// an entry read without the PTL, as GUP and the device-exclusive paths do) goes through this
    /// and backs off (retries) on failure.
    /// </summary>
    internal bool TryGetPage(ulong head)
    {
        if ((Frames.Flags(head) & PageFlags.Reserved) != 0) return true;
        ref int refs = ref Frames.RefCount(head);
        int seen = Volatile.Read(ref refs);
        while (seen != 0)
        {
            int was = Interlocked.CompareExchange(ref refs, seen + 1, seen);
            if (was == seen) return true;
            seen = was;
        }
        return false;
    }

    /// <summary>
    /// folio_ref_freeze: atomically sets the refcount from exactly <paramref name="expected"/> to
    /// 0, so no new reference can be taken (<see cref="TryGetPage"/> fails) while the caller
    /// rewrites the folio's metadata. Fails when anyone else holds a reference.
    /// </summary>
    internal bool TryFreezeRefs(ulong head, int expected)
        => expected > 0 && Interlocked.CompareExchange(ref Frames.RefCount(head), 0, expected) == expected;

    /// <summary>folio_ref_unfreeze: publishes <paramref name="count"/> as the refcount of a frozen folio.</summary>
    internal void UnfreezeRefs(ulong head, int count)
    {
        if (Volatile.Read(ref Frames.RefCount(head)) != 0)
            throw new KernelBugException("PAGE-R01", $"unfreezing pfn 0x{head:x} whose refcount is not frozen ({Frames.RefCount(head)})");
        Volatile.Write(ref Frames.RefCount(head), count);
    }

    /// <summary>folio_put: drops a reference; the last one frees the folio.</summary>
    internal void PutPage(ulong head)
    {
        if ((Frames.Flags(head) & PageFlags.Reserved) != 0) return;
        int left = Interlocked.Decrement(ref Frames.RefCount(head));
        if (left > 0) return;
        if (left < 0) throw new KernelBugException("PAGE-R01", $"refcount underflow on pfn 0x{head:x}");
        FreeFolio(head);
    }

    private void FreeFolio(ulong head)
    {
        ref PageFlags flags = ref Frames.Flags(head);
        if ((flags & PageFlags.Device) != 0)
        {
            Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.DeviceFolioFreeing, this, head);
            // free_zone_device_folio: the page goes back to its driver, which may reuse it only now
            // (MIG-R10). Its pgmap reference, dropped at the very end, keeps the memmap online meanwhile.
            flags &= ~(PageFlags.Anon | PageFlags.Dirty | PageFlags.AnonExclusive | PageFlags.LazyFree | PageFlags.Referenced);
            Frames.Owner(head) = 0;
            DeviceMemory!.PageFree(head);
            return;
        }
        bool hugeTlbPage = (flags & PageFlags.HugeTlb) != 0;
        flags &= ~(PageFlags.Anon | PageFlags.File | PageFlags.Dirty | PageFlags.Lru | PageFlags.AnonExclusive | PageFlags.Locked | PageFlags.HugeTlb);
        Frames.Owner(head) = 0;
        if (hugeTlbPage)
        {
            _ownerLock.Lock();
            try { _hugeTlbFree.Push(head); }
            finally { _ownerLock.Unlock(); }
            return;
        }
        Allocator.Free(head);
    }

    /// <summary>
    /// Whether the hugetlb pool can back <paramref name="count"/> more 2 MiB pages. The simulator
    /// checks availability at mmap time instead of keeping the kernel's per-mapping reservation
    /// maps, so a fault can still find the pool empty (SIGBUS) if others used it meanwhile.
    /// </summary>
    internal bool HugeTlbAvailable(int count)
    {
        _ownerLock.Lock();
        try { return _hugeTlbFree.Count >= count; }
        finally { _ownerLock.Unlock(); }
    }

    /// <summary>alloc_hugetlb_folio: takes a zeroed-on-fault 2 MiB page from the pool.</summary>
    internal bool TryAllocateHugeTlb(out ulong pfn)
    {
        _ownerLock.Lock();
        try
        {
            if (!_hugeTlbFree.TryPop(out pfn)) return false;
        }
        finally { _ownerLock.Unlock(); }
        Frames.RefCount(pfn) = 1;
        Frames.Flags(pfn) = PageFlags.Head | PageFlags.HugeTlb;
        Frames.Order(pfn) = Page.PmdOrder;
        return true;
    }

    internal int AllocateOwnerId(object? owner)
    {
        _ownerLock.Lock();
        try
        {
            if (_freeOwnerIds.Count > 0)
            {
                int id = _freeOwnerIds.Pop();
                Volatile.Write(ref _owners[id], owner);
                return id;
            }
            if (_ownerCount == _owners.Length)
            {
                var grown = new object?[_owners.Length * 2];
                Array.Copy(_owners, grown, _owners.Length);
                Volatile.Write(ref _owners, grown);
            }
            Volatile.Write(ref _owners[_ownerCount], owner);
            return _ownerCount++;
        }
        finally { _ownerLock.Unlock(); }
    }

    internal void SetOwner(int id, object owner)
    {
        _ownerLock.Lock();
        try { Volatile.Write(ref _owners[id], owner); }
        finally { _ownerLock.Unlock(); }
    }

    internal object? OwnerOf(int id)
    {
        var owners = Volatile.Read(ref _owners);
        return id > 0 && id < owners.Length ? Volatile.Read(ref owners[id]) : null;
    }

    internal void FreeOwnerId(int id)
    {
        _ownerLock.Lock();
        try
        {
            Volatile.Write(ref _owners[id], null);
            _freeOwnerIds.Push(id);
        }
        finally { _ownerLock.Unlock(); }
    }

    internal SimFile[] Files
    {
        get
        {
            _tasklist.Lock();
            try { return _files.ToArray(); }
            finally { _tasklist.Unlock(); }
        }
    }

    /// <summary>Frees the machine's memory. Processes and files become unusable.</summary>
    public void Dispose()
    {
        // Deferred work (an mmput_async teardown) still touches memory: let it finish first.
        SystemWork.Flush();
        Memory.Dispose();
    }
}
