using Hmm.Generators.Models;

namespace Hmm.Generators;

internal static partial class Emitter
{
    // Shape of the DeviceMemory part:
    //   partial class D : IDevPagemapOps
    //   {
    //       chunk table (memremap_pages on demand), free lists of base pages and 2 MiB folios
    //       TryAllocateDevicePage(order, out pfn) — hot-adds a chunk when the lists are empty
    //       RemoveDeviceMemory() — early removal: evict every page (data intact), unplug
    //       IDevPagemapOps.PageFree / MigrateToRam
    //   }
    private static string EmitDeviceMemory(DriverModel m)
    {
        var dm = m.DeviceMemory!;
        string kind = "global::Hmm.Runtime.DeviceMemory.DevicePageKind." + (dm.Kind switch { 1 => "Private", 2 => "Coherent", _ => "P2PDma" });
        string large = dm.LargeFolios ? "true" : "false";
        string push = dm.LargeFolios
            ? "__hmmFreeLarge[__hmmFreeLargeCount++] = pfn;"
            : "for (ulong i = " + Page + ".PmdPages; i > 0; i--) __hmmFree[__hmmFreeCount++] = pfn + i - 1;";
        string userFree = Call(m, CallbackKind.OnPageFree, "pfn") is { } f ? "\n        " + f : "";
        string migrateToRam = Call(m, CallbackKind.OnMigrateToRam, "in vmf") is { } r
            ? "return " + r
            : m.HasMigration && (dm.Kind == 1 || dm.Configurable) ? "return __HmmMigrateToRam(in vmf);"
            : m.MemoryProvider && (dm.Kind == 1 || dm.Configurable) ? "return DevicePageUser(vmf.Page) is { } user ? user.MigrateToRam(in vmf) : global::Hmm.Runtime.DeviceMemory.VmFaultResult.SigBus;"
            : "return global::Hmm.Runtime.DeviceMemory.VmFaultResult.SigBus;";
        // [BeforeMigrateToRam] runs first, before anything is collected (UVM naps a throttled CPU fault here).
        if (BeforeMigrateToRam(m) is { } before) migrateToRam = before + "\n        " + migrateToRam;
        string provider = m.MemoryProvider ? EmitMemoryProvider(m) : "";
        string freeUser = m.MemoryProvider ? "\n        __HmmClearUser(pgmap, pfn, order);" : "";
        string moveUsers = m.MemoryProvider ? "\n                    global::System.Threading.Volatile.Write(ref __hmmUsers[kept], __hmmUsers[i]);" : "";
        string dropUsers = m.MemoryProvider ? "\n            for (int i = kept; i < count; i++) global::System.Threading.Volatile.Write(ref __hmmUsers[i], null);" : "";
        // A removed chunk's per-page users array (all null once its eviction succeeded: every page went
        // through page_free, which clears its user) is kept for the next hot-add of the same size.
        string newUsers = m.MemoryProvider
            ? "\n            var users = __hmmSpareUsers is { } spare && spare.Length == (int)pgmap.PageCount ? spare : new " + DeviceMemoryUser + "?[(int)pgmap.PageCount];" +
              "\n            __hmmSpareUsers = null;" +
              "\n            global::System.Threading.Volatile.Write(ref __hmmUsers[count], users);"
            : "";
        string spareUsers = m.MemoryProvider ? "\n                {\n                    evicted += inUse;\n                    __hmmSpareUsers = __hmmUsers[i];\n                }" : " evicted += inUse;";
        // [DeviceMemory(SplitFolios = false)]: test_hmm's lists — a chunk is laid out for the order
        // that hot-added it and a base page never splits a folio. Defaults leave the text unchanged.
        if (!dm.SplitFolios && dm.LargeFolios)
            push = "if (order == " + Page + ".PmdOrder) __hmmFreeLarge[__hmmFreeLargeCount++] = pfn;\n" +
                   "                    else for (ulong i = " + Page + ".PmdPages; i > 0; i--) __hmmFree[__hmmFreeCount++] = pfn + i - 1;";
        string raced = dm.SplitFolios ? "__hmmFreeLargeCount > 0 || (order == 0 && __hmmFreeCount > 0)" : "order != 0 ? __hmmFreeLargeCount > 0 : __hmmFreeCount > 0";
        // Initial chunks are hot-added with order -1: always a new chunk, laid out as base pages when not splitting.
        if (dm.InitialChunks > 0) raced = "order >= 0 && (" + raced + ")";
        string splitOne = dm.SplitFolios ? SplitOne : "";
        string splitMany = dm.SplitFolios ? SplitMany : "";
        string countOne = dm.PageCounters ? "\n                global::System.Threading.Interlocked.Add(ref __hmmPagesAllocated, 1L << order);" : "";
        string countMany = dm.PageCounters ? "\n        global::System.Threading.Interlocked.Add(ref __hmmPagesAllocated, got);" : "";
        // [DeviceMemory(Configurable = true)]: hot-add with the geometry chosen at run time.
        string chunkKind = dm.Configurable ? "__hmmKind" : kind;
        string chunkBytes = dm.Configurable ? "__hmmChunkBytes" : "DeviceChunkBytes";
        string chunkLimit = dm.Configurable ? "__hmmChunkLimit" : "DeviceMaxChunks";
        string countFree = dm.PageCounters ? "\n        global::System.Threading.Interlocked.Add(ref __hmmPagesFreed, 1L << order);" : "";
        return $$"""
            partial class {{m.ClassName}} : global::Hmm.Runtime.DeviceMemory.IDevPagemapOps
            {{{provider}}
                /// <summary>Bytes hot-added per chunk (<c>[DeviceMemory(ChunkBytes)]</c>).</summary>
                {{GeneratedCode}}
                public const long DeviceChunkBytes = {{dm.ChunkBytes}}L;

                /// <summary>The chunk limit (<c>[DeviceMemory(MaxChunks)]</c>); beyond it allocation fails (ENOMEM).</summary>
                {{GeneratedCode}}
                public const int DeviceMaxChunks = {{dm.MaxChunks}};

                /// <summary>Whether 2 MiB device folios are handed out (<c>[DeviceMemory(LargeFolios)]</c>).</summary>
                {{GeneratedCode}}
                public const bool DeviceLargeFolios = {{large}};

                // The free lists are touched from page_free (atomic context: a spinlock, never a
                // sleeping lock); hot-add and removal are serialised by a mutex taken outside it.
                {{GeneratedCode}}
                private readonly global::Hmm.Runtime.Locking.SpinLock __hmmFreeLock = new({{Literal(m.DriverName + ".devmem.free")}});
                {{GeneratedCode}}
                private readonly {{KernelMutex}} __hmmHotplugLock = new({{Literal(m.DriverName + ".devmem.hotplug")}});
                {{GeneratedCode}}
                private readonly {{DevPagemap}}?[] __hmmChunks = new {{DevPagemap}}?[{{dm.MaxChunks}}];
                {{GeneratedCode}}
                private int __hmmChunkCount;
                {{GeneratedCode}}
                private ulong[] __hmmFree = global::System.Array.Empty<ulong>();
                {{GeneratedCode}}
                private int __hmmFreeCount;
                {{GeneratedCode}}
                private ulong[] __hmmFreeLarge = global::System.Array.Empty<ulong>();
                {{GeneratedCode}}
                private int __hmmFreeLargeCount;
                {{GeneratedCode}}
                private long __hmmDeviceAllocations;

                /// <summary>Chunks hot-added so far (removed ones excluded).</summary>
                {{GeneratedCode}}
                public int DeviceChunkCount => global::System.Threading.Volatile.Read(ref __hmmChunkCount);

                /// <summary>The <paramref name="index"/>-th chunk's pagemap.</summary>
                {{GeneratedCode}}
                public {{DevPagemap}} DeviceChunk(int index)
                    => (uint)index < (uint)DeviceChunkCount ? __hmmChunks[index]! : throw new global::System.ArgumentOutOfRangeException(nameof(index));

                /// <summary>Device pages (base-page units) currently on the free lists.</summary>
                {{GeneratedCode}}
                public long DevicePagesFree
                {
                    get
                    {
                        __hmmFreeLock.Lock();
                        try { return __hmmFreeCount + ((long)__hmmFreeLargeCount << {{Page}}.PmdOrder); }
                        finally { __hmmFreeLock.Unlock(); }
                    }
                }

                /// <summary>Device pages and folios handed out by <see cref="TryAllocateDevicePage"/> so far (cumulative).</summary>
                {{GeneratedCode}}
                public long DeviceAllocations => global::System.Threading.Interlocked.Read(ref __hmmDeviceAllocations);{{EmitPageCounters(m)}}{{EmitInitialChunks(m)}}{{EmitConfigurable(m, kind)}}

                /// <summary>The chunk holding <paramref name="pfn"/>, or null when it is not this driver's device memory.</summary>
                {{GeneratedCode}}
                public {{DevPagemap}}? DeviceChunkOf(ulong pfn)
                {
                    // page_pgmap is O(1) (the section table); the chunk is ours when its ops are this driver.
                    // A scan of the chunks would cost O(chunks) per allocated or freed page.
                    var pgmap = Device is { } device ? {{DevPagemap}}.Of(device.Machine, pfn) : null;
                    return pgmap != null && ReferenceEquals(pgmap.Ops, this) ? pgmap : null;
                }

                /// <summary>
                /// Allocates a device page (<paramref name="order"/> 0) or 2 MiB folio (order 9), initialised
                /// as a migration destination (zone_device_page_init: refcount 1, locked). Empty free lists
                /// hot-add a chunk; false when <see cref="DeviceMaxChunks"/> chunks are in use (the caller
                /// reports ENOMEM) or a folio is asked for without large folios. A base page may split a free
                /// folio.
                /// </summary>
                {{GeneratedCode}}
                {{MayBlock}}
                public bool TryAllocateDevicePage(int order, out ulong pfn)
                {
                    pfn = 0;
                    if (order != 0 && {{(dm.LargeFolios ? "order != " + Page + ".PmdOrder" : "true")}}) return false;
                    while (true)
                    {
                        bool found = false;
                        __hmmFreeLock.Lock();
                        try
                        {
                            if (order != 0)
                            {
                                if (__hmmFreeLargeCount > 0) { pfn = __hmmFreeLarge[--__hmmFreeLargeCount]; found = true; }
                            }
                            else if (__hmmFreeCount > 0) { pfn = __hmmFree[--__hmmFreeCount]; found = true; }{{splitOne}}
                            // zone_device_page_init before the free-list lock is dropped: RemoveDeviceMemory drops
                            // a chunk's free pages under this lock before marking it removing, so a page taken
                            // here is in use (refcount 1) by then, or was never taken (MIG-R10).
                            if (found) DeviceChunkOf(pfn)!.InitPage(pfn, order);
                        }
                        finally { __hmmFreeLock.Unlock(); }
                        if (found)
                        {
                            global::System.Threading.Interlocked.Increment(ref __hmmDeviceAllocations);{{countOne}}
                            return true;
                        }
                        if (!__HmmHotAdd(order)) return false;
                    }
                }

                /// <summary>
                /// Allocates up to <c>pfns.Length</c> device base pages into <paramref name="pfns"/> under one hold
                /// of the free-list lock per refill (a migration piece's worth at once), hot-adding chunks as
                /// needed; each is initialised as a migration destination. Returns how many were had (fewer
                /// when <see cref="DeviceMaxChunks"/> chunks are in use).
                /// </summary>
                {{GeneratedCode}}
                {{MayBlock}}
                public int TryAllocateDevicePages(global::System.Span<ulong> pfns)
                {
                    int got = 0;
                    {{DevPagemap}}? chunk = null;
                    while (got < pfns.Length)
                    {
                        __hmmFreeLock.Lock();
                        try
                        {
                            int from = got;
                            while (got < pfns.Length)
                            {
                                if (__hmmFreeCount > 0) pfns[got++] = __hmmFree[--__hmmFreeCount];{{splitMany}}
                                else break;
                            }
                            // Ascending pfns, so the copy engine chains a piece's pages into contiguous transfers: the
                            // free list is a LIFO, and pages freed in ascending order (a migration back) come off it
                            // descending.
                            var taken = pfns.Slice(from, got - from);
                            if (taken.Length > 1 && taken[0] > taken[taken.Length - 1]) global::System.MemoryExtensions.Reverse(taken);
                            for (int i = 1; i < taken.Length; i++)
                                if (taken[i] < taken[i - 1]) { global::System.MemoryExtensions.Sort(taken); break; }
                            // zone_device_page_init under the lock, as TryAllocateDevicePage does (MIG-R10), once per
                            // run of consecutive pages in one chunk (DevPagemap.InitPages: one pagemap reference step per run).
                            for (int i = 0; i < taken.Length;)
                            {
                                ulong pfn = taken[i];
                                if (chunk == null || !chunk.Contains(pfn)) chunk = DeviceChunkOf(pfn)!;
                                int run = 1;
                                while (i + run < taken.Length && taken[i + run] == pfn + (ulong)run && chunk.Contains(pfn + (ulong)run)) run++;
                                chunk.InitPages(pfn, run);
                                i += run;
                            }
                        }
                        finally { __hmmFreeLock.Unlock(); }
                        if (got < pfns.Length && !__HmmHotAdd(0)) break;
                    }
                    global::System.Threading.Interlocked.Add(ref __hmmDeviceAllocations, got);{{countMany}}
                    return got;
                }

                /// <summary>memremap_pages of one more chunk (<see cref="DeviceChunkBytes"/>), its pages pushed on the free lists. False at the limit.</summary>
                {{GeneratedCode}}
                private bool __HmmHotAdd(int order)
                {
                    __hmmHotplugLock.Lock();
                    try
                    {
                        __hmmFreeLock.Lock();
                        // Another thread may have hot-added (or freed) meanwhile: retry if the request can be met now.
                        bool raced = {{raced}};
                        __hmmFreeLock.Unlock();
                        if (raced) return true;
                        int count = __hmmChunkCount;
                        if (count >= {{chunkLimit}} || Device is not { } device) return false;
                        var e = {{DevPagemap}}.Create(device.Machine, {{chunkKind}}, (ulong){{chunkBytes}}, PgmapOwner, this, out var pgmap);
                        if (e != {{Errno}}.Ok || pgmap == null) return false;
                        // Grow the lists to hold every page of every chunk when they are too short (cold path: a
                        // hot-add); after a removal they are long enough already, so a re-hot-add allocates nothing.
                        int pages = (int)({{chunkBytes}} >> {{Page}}.Shift) * (count + 1);
                        var free = __hmmFree.Length >= pages ? null : new ulong[pages];
                        var freeLarge = __hmmFreeLarge.Length >= pages >> {{Page}}.PmdOrder ? null : new ulong[pages >> {{Page}}.PmdOrder];
                        // Published before its pages go on the free lists: another thread may take one the moment
                        // they do, and must find the chunk (its per-page state) when it records what it took.{{newUsers}}
                        global::System.Threading.Volatile.Write(ref __hmmChunks[count], pgmap);
                        global::System.Threading.Volatile.Write(ref __hmmChunkCount, count + 1);
                        __hmmFreeLock.Lock();
                        try
                        {
                            if (free != null)
                            {
                                global::System.Array.Copy(__hmmFree, free, __hmmFreeCount);
                                __hmmFree = free;
                            }
                            if (freeLarge != null)
                            {
                                global::System.Array.Copy(__hmmFreeLarge, freeLarge, __hmmFreeLargeCount);
                                __hmmFreeLarge = freeLarge;
                            }
                            // Pushed from the top so the lowest pfns are handed out first.
                            for (ulong pfn = pgmap.FirstPfn + pgmap.PageCount; pfn > pgmap.FirstPfn;)
                            {
                                pfn -= {{Page}}.PmdPages;
                                {{push}}
                            }
                        }
                        finally { __hmmFreeLock.Unlock(); }
                        global::Hmm.Runtime.Interleaving.DeviceMemoryHookPoints.ChunkPlugged(this, pgmap.FirstPfn);
                        return true;
                    }
                    finally { __hmmHotplugLock.Unlock(); }
                }

                /// <summary>
                /// Early removal of all device memory (memunmap_pages after migrate_device_range): every
                /// page in use is evicted to system memory with its data (its CPU mappings see CLEAR
                /// events), then each chunk is unplugged and its free pages dropped. ENOMEM or EBUSY from
                /// the eviction leave that chunk removing (never handed out again); the others go.
                /// </summary>
                {{GeneratedCode}}
                {{MayBlock}}
                public {{Errno}} RemoveDeviceMemory()
                {
                    __hmmHotplugLock.Lock();
                    try
                    {
                        var result = {{Errno}}.Ok;
                        int count = __hmmChunkCount, kept = 0;
                        long evicted = 0;
                        for (int i = 0; i < count; i++)
                        {
                            var chunk = __hmmChunks[i]!;
                            // Free pages first, so none is handed out while the chunk goes; again after the
                            // eviction for pages freed before page_free saw the chunk removing.
                            __HmmDropFree(chunk, draining: true);
                            long inUse = __HmmPagesInUse(chunk);
                            var e = global::Hmm.Runtime.Migration.MigrateDevice.EvictAndRemove(chunk);
                            __HmmDropFree(chunk, draining: false);
                            if (e != {{Errno}}.Ok)
                            {
                                // The chunk stays (removing): what is still in use did not move.
                                evicted += inUse - __HmmPagesInUse(chunk);
                                result = e;{{moveUsers}}
                                global::System.Threading.Volatile.Write(ref __hmmChunks[kept++], chunk);
                            }
                            else{{spareUsers}}
                        }
                        for (int i = kept; i < count; i++) global::System.Threading.Volatile.Write(ref __hmmChunks[i], null);{{dropUsers}}
                        global::System.Threading.Volatile.Write(ref __hmmChunkCount, kept);
                        // Eviction is migration out of device memory: the device's hmm.device.pages_migrated_from_device.
                        if (evicted != 0 && Device is { } device) device.Meters.AddPagesMigratedFromDevice(evicted);
                        return result;
                    }
                    finally { __hmmHotplugLock.Unlock(); }
                }

                /// <summary>Base pages of <paramref name="chunk"/> in use (a 2 MiB folio counts 512): what an eviction of it migrates.</summary>
                {{GeneratedCode}}
                private static long __HmmPagesInUse({{DevPagemap}} chunk) => chunk.BasePagesInUse;

                // The chunk RemoveDeviceMemory is draining (under the free-list lock): page_free takes none of
                // its pages back, so none can be handed out — and initialised — once it is marked removing (MIG-R10).
                {{GeneratedCode}}
                private {{DevPagemap}}? __hmmDraining;

                {{GeneratedCode}}
                private void __HmmDropFree({{DevPagemap}} chunk, bool draining)
                {
                    __hmmFreeLock.Lock();
                    try
                    {
                        __hmmDraining = draining ? chunk : null;
                        int n = 0;
                        for (int i = 0; i < __hmmFreeCount; i++)
                            if (!chunk.Contains(__hmmFree[i])) __hmmFree[n++] = __hmmFree[i];
                        __hmmFreeCount = n;
                        n = 0;
                        for (int i = 0; i < __hmmFreeLargeCount; i++)
                            if (!chunk.Contains(__hmmFreeLarge[i])) __hmmFreeLarge[n++] = __hmmFreeLarge[i];
                        __hmmFreeLargeCount = n;
                    }
                    finally { __hmmFreeLock.Unlock(); }
                }

                /// <summary>
                /// dev_pagemap_ops.page_free (atomic context): the <c>[OnPageFree]</c> callback, then the page
                /// or folio goes back on its free list — unless its chunk is being removed.
                /// </summary>
                {{GeneratedCode}}
                void global::Hmm.Runtime.DeviceMemory.IDevPagemapOps.PageFree({{DevPagemap}} pgmap, ulong pfn)
                {
                    int order = pgmap.FolioOrder(pfn);{{userFree}}{{freeUser}}
                    global::Hmm.Runtime.Interleaving.DeviceMemoryHookPoints.PageFreeing(this, pfn);
                    __hmmFreeLock.Lock();
                    try
                    {
                        // Checked under the lock: RemoveDeviceMemory marks the chunk removing before its last
                        // drop of the free lists (under this lock), so a free that looked before the mark
                        // cannot put the page back after the drop, for a later allocation to initialise (MIG-R10).
                        if (pgmap.IsRemoving || ReferenceEquals(pgmap, __hmmDraining)) return;
                        if (order != 0) __hmmFreeLarge[__hmmFreeLargeCount++] = pfn;
                        else __hmmFree[__hmmFreeCount++] = pfn;
                    }
                    finally { __hmmFreeLock.Unlock(); }{{countFree}}
                }

                /// <summary>dev_pagemap_ops.migrate_to_ram: the <c>[OnMigrateToRam]</c> callback, or the generated default.</summary>
                {{GeneratedCode}}
                global::Hmm.Runtime.DeviceMemory.VmFaultResult global::Hmm.Runtime.DeviceMemory.IDevPagemapOps.MigrateToRam(in global::Hmm.Runtime.DeviceMemory.VmFault vmf)
                {
                    {{migrateToRam}}
                }
            }
            """;
    }

    /// <summary>
    /// The <c>[BeforeMigrateToRam]</c> guard that opens every generated migrate_to_ram of a driver
    /// (its own memory's or the shared memory's hand-over), or null: false retries the CPU fault.
    /// </summary>
    private static string? BeforeMigrateToRam(DriverModel m)
        => Call(m, CallbackKind.BeforeMigrateToRam, "in vmf") is { } call
            ? "if (!" + call.TrimEnd(';') + ") return global::Hmm.Runtime.DeviceMemory.VmFaultResult.Ok;"
            : null;

    // The members only a device-level memory class gets: the device it is plugged into, its pgmap
    // owner, and per page the driver instance that migrated it there (test_hmm's zone_device_data →
    // dmirror), to which a CPU fault on the page (migrate_to_ram) is handed.
    private static string EmitMemoryProvider(DriverModel m)
    {
        var dm = m.DeviceMemory!;
        string initial = dm.InitialChunks > 0
            ? "\n        if (!__HmmHotAddInitial()) throw new global::Hmm.Runtime.ErrnoException(" + Errno + ".ENOMEM, " + Literal(m.ClassName + ": the initial chunks could not be hot-added") + ");"
            : "";
        return $$"""

                /// <summary>The device this memory is plugged into (<see cref="AttachDeviceMemory"/>); its machine hosts the chunks.</summary>
                {{GeneratedCode}}
                public global::Hmm.Runtime.Devices.SimDevice Device { get; private set; } = null!;

                /// <summary>The pgmap owner cookie of every chunk (dev_private_owner of the drivers sharing this memory, HMM-R17).</summary>
                {{GeneratedCode}}
                public object PgmapOwner => this;

                // Per chunk, per page: the driver instance a page was migrated for (null when free).
                {{GeneratedCode}}
                private readonly {{DeviceMemoryUser}}?[]?[] __hmmUsers = new {{DeviceMemoryUser}}?[{{dm.MaxChunks}}][];

                // The users array of the last chunk removed whole (under the hotplug lock): reused by the next hot-add.
                {{GeneratedCode}}
                private {{DeviceMemoryUser}}?[]? __hmmSpareUsers;

                /// <summary>Plugs this memory into <paramref name="device"/> (before any allocation); chunks are hot-added on demand.</summary>
                {{GeneratedCode}}
                public void AttachDeviceMemory(global::Hmm.Runtime.Devices.SimDevice device)
                {
                    global::System.ArgumentNullException.ThrowIfNull(device);
                    if (Device is not null && !ReferenceEquals(Device, device)) throw new global::System.InvalidOperationException({{Literal(m.ClassName + ": already attached to another device")}});
                    Device = device;{{initial}}
                }

                /// <summary>The driver instance <paramref name="pfn"/> was migrated for, or null.</summary>
                {{GeneratedCode}}
                public {{DeviceMemoryUser}}? DevicePageUser(ulong pfn)
                {
                    var users = __HmmUsersOf(pfn, out int index);
                    return users == null ? null : global::System.Threading.Volatile.Read(ref users[index]);
                }

                /// <summary>Records <paramref name="user"/> for the 2^<paramref name="order"/> pages at <paramref name="pfn"/> (the generated migration does this for every device page it allocates).</summary>
                {{GeneratedCode}}
                public void SetDevicePageUser(ulong pfn, int order, {{DeviceMemoryUser}}? user)
                {
                    var users = __HmmUsersOf(pfn, out int index);
                    if (users == null) return;
                    for (int k = 0; k < 1 << order && index + k < users.Length; k++) global::System.Threading.Volatile.Write(ref users[index + k], user);
                }

                {{GeneratedCode}}
                private {{DeviceMemoryUser}}?[]? __HmmUsersOf(ulong pfn, out int index)
                {
                    index = 0;
                    var pgmap = DeviceChunkOf(pfn);
                    if (pgmap == null) return null;
                    // Downwards, skipping a slot whose users are gone: RemoveDeviceMemory moves a chunk it keeps to a
                    // lower slot before it clears the old one, so a lookup racing it still finds the chunk.
                    for (int i = global::System.Threading.Volatile.Read(ref __hmmChunkCount) - 1; i >= 0; i--)
                        if (ReferenceEquals(global::System.Threading.Volatile.Read(ref __hmmChunks[i]), pgmap)
                            && global::System.Threading.Volatile.Read(ref __hmmUsers[i]) is { } users)
                        {
                            index = (int)(pfn - pgmap.FirstPfn);
                            return users;
                        }
                    return null;
                }

                {{GeneratedCode}}
                private void __HmmClearUser({{DevPagemap}} pgmap, ulong pfn, int order) => SetDevicePageUser(pfn, order, null);

            """;
    }

    // The split branches of the allocators (SplitFolios, the default): a base page taken from a free folio.
    private const string SplitOne = """

                            else if (__hmmFreeLargeCount > 0)
                            {
                                ulong block = __hmmFreeLarge[--__hmmFreeLargeCount];
                                for (ulong i = global::Hmm.Runtime.Memory.Page.PmdPages - 1; i > 0; i--) __hmmFree[__hmmFreeCount++] = block + i;
                                pfn = block;
                                found = true;
                            }
            """;

    private const string SplitMany = """

                                else if (__hmmFreeLargeCount > 0)
                                {
                                    ulong block = __hmmFreeLarge[--__hmmFreeLargeCount];
                                    for (ulong i = global::Hmm.Runtime.Memory.Page.PmdPages - 1; i > 0; i--) __hmmFree[__hmmFreeCount++] = block + i;
                                    pfns[got++] = block;
                                }
            """;

    // [DeviceMemory(PageCounters = true)]: test_hmm's calloc/cfree and the free-list lengths.
    private static string EmitPageCounters(DriverModel m)
    {
        if (!m.DeviceMemory!.PageCounters) return "";
        return $$"""


                {{GeneratedCode}}
                private long __hmmPagesAllocated, __hmmPagesFreed;

                /// <summary>Device pages handed out, in base pages (a 2 MiB folio counts 512): test_hmm's <c>calloc</c>.</summary>
                {{GeneratedCode}}
                public long DevicePagesAllocated => global::System.Threading.Interlocked.Read(ref __hmmPagesAllocated);

                /// <summary>Device pages given back to the free lists, in base pages: test_hmm's <c>cfree</c> (not counted while their chunk is being removed).</summary>
                {{GeneratedCode}}
                public long DevicePagesFreed => global::System.Threading.Interlocked.Read(ref __hmmPagesFreed);

                /// <summary>Base pages and 2 MiB folios on the free lists.</summary>
                {{GeneratedCode}}
                public (int Pages, int Folios) DeviceFreeListLengths
                {
                    get
                    {
                        __hmmFreeLock.Lock();
                        try { return (__hmmFreeCount, __hmmFreeLargeCount); }
                        finally { __hmmFreeLock.Unlock(); }
                    }
                }
            """;
    }

    // [DeviceMemory(InitialChunks = N)]: the chunks plugged with the memory (dmirror_device_init's first one).
    private static string EmitInitialChunks(DriverModel m)
    {
        var dm = m.DeviceMemory!;
        if (dm.InitialChunks == 0) return "";
        string layout = dm.SplitFolios && dm.LargeFolios ? "2 MiB folios, split on demand" : "base pages";
        return $$"""


                /// <summary>
                /// Hot-adds chunks until <c>[DeviceMemory(InitialChunks = {{dm.InitialChunks}})]</c> are plugged ({{layout}}), when the
                /// memory is plugged into its device; false when one cannot be. Later chunks come on demand.
                /// </summary>
                {{GeneratedCode}}
                private bool __HmmHotAddInitial()
                {
                    while (global::System.Threading.Volatile.Read(ref __hmmChunkCount) < {{dm.InitialChunks}})
                        if (!__HmmHotAdd(-1)) return false;
                    return true;
                }
            """;
    }

    // [DeviceMemory(Configurable = true)]: kind, chunk size and limit chosen at run time, before the first
    // chunk is plugged (a probe decides: amdgpu per device, test_hmm per minor and module parameter).
    private static string EmitConfigurable(DriverModel m, string declaredKind)
    {
        var dm = m.DeviceMemory!;
        if (!dm.Configurable) return "";
        string kinds = dm.Kind is 1 or 2
            ? "kind is not (global::Hmm.Runtime.DeviceMemory.DevicePageKind.Private or global::Hmm.Runtime.DeviceMemory.DevicePageKind.Coherent)"
            : "kind != global::Hmm.Runtime.DeviceMemory.DevicePageKind.P2PDma";
        string kindText = dm.Kind is 1 or 2 ? "Private or Coherent" : "P2PDma";
        int min = System.Math.Max(1, dm.InitialChunks);
        return $$"""


                {{GeneratedCode}}
                private global::Hmm.Runtime.DeviceMemory.DevicePageKind __hmmKind = {{declaredKind}};
                {{GeneratedCode}}
                private long __hmmChunkBytes = DeviceChunkBytes;
                {{GeneratedCode}}
                private int __hmmChunkLimit = DeviceMaxChunks;

                /// <summary>The kind chunks are hot-added as: the declared one unless <see cref="ConfigureDeviceMemory"/> chose another.</summary>
                {{GeneratedCode}}
                public global::Hmm.Runtime.DeviceMemory.DevicePageKind DeviceKind => __hmmKind;

                /// <summary>Bytes per chunk in effect (<see cref="DeviceChunkBytes"/> unless configured).</summary>
                {{GeneratedCode}}
                public long DeviceChunkSize => __hmmChunkBytes;

                /// <summary>The chunk limit in effect (<see cref="DeviceMaxChunks"/> unless configured lower).</summary>
                {{GeneratedCode}}
                public int DeviceChunkLimit => __hmmChunkLimit;

                /// <summary>
                /// Chooses the memory's kind ({{kindText}}), chunk size (a positive multiple of 2 MiB) and chunk limit
                /// (at least the initial chunks, at most <see cref="DeviceMaxChunks"/>) at run time — before any chunk
                /// is plugged, so before the memory is attached when it has initial chunks. Throws
                /// <see cref="global::System.ArgumentOutOfRangeException"/> for a bad value and
                /// <see cref="global::System.InvalidOperationException"/> once a chunk is plugged.
                /// </summary>
                {{GeneratedCode}}
                public void ConfigureDeviceMemory(global::Hmm.Runtime.DeviceMemory.DevicePageKind kind, long chunkBytes, int maxChunks)
                {
                    if ({{kinds}}) throw new global::System.ArgumentOutOfRangeException(nameof(kind), kind, "{{kindText}}");
                    if (chunkBytes <= 0 || chunkBytes % (2L << 20) != 0) throw new global::System.ArgumentOutOfRangeException(nameof(chunkBytes), chunkBytes, "a positive multiple of 2 MiB");
                    if (maxChunks < {{min}} || maxChunks > DeviceMaxChunks) throw new global::System.ArgumentOutOfRangeException(nameof(maxChunks), maxChunks, "{{min}}..{{dm.MaxChunks}}");
                    __hmmHotplugLock.Lock();
                    try
                    {
                        if (__hmmChunkCount != 0) throw new global::System.InvalidOperationException({{Literal(m.ClassName + ": configure the device memory before any chunk is plugged")}});
                        __hmmKind = kind;
                        __hmmChunkBytes = chunkBytes;
                        __hmmChunkLimit = maxChunks;
                    }
                    finally { __hmmHotplugLock.Unlock(); }
                }
            """;
    }
}
