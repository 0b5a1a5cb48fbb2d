using Hmm.Generators.Models;

namespace Hmm.Generators;

internal static partial class Emitter
{
    // Shape of the Migration part:
    //   partial class D
    //   {
    //       MigrateToDevice(start, end[, out moved]) / MigrateToSystem(start, end[, out moved])
    //       per ≤ 2 MiB piece in one VMA, mmap read lock across: Setup → own-event invalidation →
    //       allocate (+ per-page fallback) → [CopyPages] → Pages → Finalize (in a finally)
    //       __HmmMigrateToRam — the default dev_pagemap_ops.migrate_to_ram
    //   }
    private static string EmitMigration(DriverModel m)
    {
        var dm = m.DeviceMemory!;
        string copy = Call(m, CallbackKind.CopyPages, "new global::System.ReadOnlySpan<" + PageCopy + ">(s.Copies, 0, copies)")!;
        string deviceSelect = "global::Hmm.Runtime.Migration.MigrateSelect." + (dm.Kind == 2 ? "DeviceCoherent" : "DevicePrivate");
        // [DeviceMemory(Configurable = true)]: the kind is the memory's, chosen at run time.
        if (dm.Configurable)
            deviceSelect = "(" + m.MemoryExpr + ".DeviceKind == global::Hmm.Runtime.DeviceMemory.DevicePageKind.Coherent ? global::Hmm.Runtime.Migration.MigrateSelect.DeviceCoherent : global::Hmm.Runtime.Migration.MigrateSelect.DevicePrivate)";
        string compound = dm.LargeFolios ? " | global::Hmm.Runtime.Migration.MigrateSelect.Compound" : "";
        // HmmDriver.MigrationWalk = TestHmmIoctl (EmitIoctlWalk below): test_hmm's ioctl walk. Every
        // string it changes is the default's text when the option is off.
        bool ioctl = m.MigrationWalk == 1;
        string own = m.FilterOwnMigrations && !ioctl
            ? $"\n                    __HmmInvalidateOwn(mm, a, next, {NotifyEvent}.Migrate);"
            : "";
        string ownRam = m.FilterOwnMigrations
            ? $"\n            __HmmInvalidateOwn(vmf.Mm, start, args.End, {NotifyEvent}.Migrate);"
            : "";
        string mem = m.MemoryExpr;
        string migrated = Call(m, CallbackKind.OnMigrated, "args") is { } om
            ? $$"""

                                {{U(m)}}.Lock();
                                try { {{om}} }
                                finally { {{U(m)}}.Unlock(); }
                """
            : "";
        string allocate = Call(m, CallbackKind.AllocatePage, "order, toDevice, out pfn") is { } ap
            ? "bool ok = " + ap
            : "bool ok = toDevice ? " + mem + ".TryAllocateDevicePage(order, out pfn) : global::Hmm.Runtime.Migration.SystemPages.TryAllocateLocked(Device.Machine, order, out pfn);";
        string recordUser = m.Memory != null ? "\n        if (ok && toDevice) " + mem + ".SetDevicePageUser(pfn, order, this);" : "";
        string userMigrateToRam = Call(m, CallbackKind.OnMigrateToRam, "in vmf") is { } umr ? umr.TrimEnd(';') : dm.Kind == 1 || dm.Configurable ? "__HmmMigrateToRam(in vmf)" : "global::Hmm.Runtime.DeviceMemory.VmFaultResult.SigBus";
        // [BeforeMigrateToRam] opens the hand-over too (the shared memory calls this instance's migrate_to_ram).
        string userMigrateToRamBody = BeforeMigrateToRam(m) is { } beforeUser
            ? "{\n    " + beforeUser + "\n    return " + userMigrateToRam + ";\n}"
            : "    => " + userMigrateToRam + ";";
        string sharedUser = m.Memory != null
            ? $$"""

                /// <summary>dev_pagemap_ops.migrate_to_ram, handed over by the shared device memory for a page this instance migrated.</summary>
                {{GeneratedCode}}
                global::Hmm.Runtime.DeviceMemory.VmFaultResult {{DeviceMemoryUser}}.MigrateToRam(in global::Hmm.Runtime.DeviceMemory.VmFault vmf)
                {{userMigrateToRamBody}}

                """
            : "";
        string baseList = m.Memory != null ? " : " + DeviceMemoryUser : "";
        // Without a substitute allocator, a piece's base pages come from the free lists in one hold of
        // their spinlock (TryAllocateDevicePages) rather than one lock round trip per page.
        bool bulk = m.Callback(CallbackKind.AllocatePage) == null;
        string bulkPrologue = bulk
            ? $$"""

                    // One hold of the free-list lock for every base page of the piece.
                    int want = 0, next = 0;
                    for (int i = 0; i < n; i++)
                        if ((src[i] & ({{MigratePfn}}.Migrate | {{MigratePfn}}.Compound)) == {{MigratePfn}}.Migrate) want++;
                    int got = want == 0 ? 0 : {{mem}}.TryAllocateDevicePages(new global::System.Span<ulong>(s.Pages, 0, want));
            """
            : "";
        string basePage = !bulk ? "__HmmAllocateDestination(0, true, out ulong page)"
            : m.Memory != null ? "next < got && __HmmRecordUser(s.Pages[next++], out ulong page)"
            : "next < got";
        string recordUserMethod = bulk && m.Memory != null
            ? $$"""

                /// <summary>Records this instance as the user of a device page taken in bulk (the shared memory hands it migrate_to_ram).</summary>
                {{GeneratedCode}}
                private bool __HmmRecordUser(ulong pfn, out ulong page)
                {
                    {{mem}}.SetDevicePageUser(pfn, 0, this);
                    page = pfn;
                    return true;
                }

                """
            : "";
        return $$"""
            partial class {{m.ClassName}}{{baseList}}
            {{{sharedUser}}{{recordUserMethod}}
                /// <summary>
                /// Allocates one migration destination: a device page or 2 MiB folio of {{(m.Memory != null ? "the shared device memory" : "this driver's device memory")}} when
                /// <paramref name="toDevice"/>, else system memory{{(m.Callback(CallbackKind.AllocatePage) != null ? " — through the driver's <c>[AllocatePage]</c> substitute allocator" : "")}}.
                /// </summary>
                {{GeneratedCode}}
                private bool __HmmAllocateDestination(int order, bool toDevice, out ulong pfn)
                {
                    {{allocate}}{{recordUser}}
                    return ok;
                }

                /// <summary>Scratch for one migrate_vma call: src/dst/copies for 512 entries and the args object.</summary>
                {{GeneratedCode}}
                private sealed class __HmmMigrateScratch
                {
                    public readonly ulong[] Src = new ulong[{{Page}}.PmdPages];
                    public readonly ulong[] Dst = new ulong[{{Page}}.PmdPages];
                    public readonly {{PageCopy}}[] Copies = new {{PageCopy}}[{{Page}}.PmdPages];
                    public readonly ulong[] Pages = new ulong[{{Page}}.PmdPages];
                    public readonly {{MigrateVma}} Args = new();
                }

                // Per thread, so concurrent migrations (and migrate_to_ram on any CPU thread) allocate
                // nothing after warm-up and never share arrays; migrate_to_ram has its own because it
                // can run while a driver migration is in progress on the same thread's stack.
                [global::System.ThreadStatic]
                {{GeneratedCode}}
                private static __HmmMigrateScratch? t_hmmMigrate;
                [global::System.ThreadStatic]
                {{GeneratedCode}}
                private static __HmmMigrateScratch? t_hmmMigrateToRam;

                {{GeneratedCode}}
                private long __hmmPagesToDevice, __hmmPagesToSystem, __hmmLargeFallbacks;

                /// <summary>Pages migrated to device memory so far.</summary>
                {{GeneratedCode}}
                public long PagesMigratedToDevice => global::System.Threading.Interlocked.Read(ref __hmmPagesToDevice);

                /// <summary>Pages migrated back to system memory so far (migrate_to_ram included).</summary>
                {{GeneratedCode}}
                public long PagesMigratedToSystem => global::System.Threading.Interlocked.Read(ref __hmmPagesToSystem);

                /// <summary>2 MiB allocations that failed and fell back to base pages.</summary>
                {{GeneratedCode}}
                public long LargeAllocationFallbacks => global::System.Threading.Interlocked.Read(ref __hmmLargeFallbacks);

                /// <summary>Migrates the system pages of [<paramref name="start"/>, <paramref name="end"/>) to device memory (see the overload).</summary>
                {{GeneratedCode}}
                {{MayBlock}}
                [global::Hmm.Dsl.Excludes({{Literal(ULockName(m))}})]
                public {{Errno}} MigrateToDevice(ulong start, ulong end) => MigrateToDevice(start, end, out _);

                /// <summary>
                /// migrate_vma system → device: {{(ioctl ? "test_hmm's ioctl walk (HmmDriver.MigrationWalk: pieces of at most 512 pages from\n    /// the address, EINVAL without a VMA or VM_READ, nothing invalidated before migrating)" : "per piece of at most 2 MiB inside one VMA (EFAULT when an\n    /// address has no VMA)")}}, with the mmap read lock held across setup → pages → finalize
                /// (MIG-R01); finalize runs on every path after a successful setup (MIG-R02). Device pages
                /// come from <c>TryAllocateDevicePage</c> (2 MiB folios for COMPOUND entries, falling
                /// back to 512 base pages when the folio cannot be had); pages that get no device page
                /// stay in system memory. <paramref name="moved"/> counts pages that moved.
                /// </summary>
                {{GeneratedCode}}
                {{MayBlock}}
                [global::Hmm.Dsl.Excludes({{Literal(ULockName(m))}})]
                public {{Errno}} MigrateToDevice(ulong start, ulong end, out long moved)
                {
                    var e = __HmmMigrate(start, end, toDevice: true, out moved{{(ioctl ? ", out _" : "")}});
                    global::System.Threading.Interlocked.Add(ref __hmmPagesToDevice, moved);
                    // The device's hmm.device.pages_migrated_to_device instrument, once per call (Device is
                    // null before Attach, when nothing can have moved).
                    if (moved != 0) Device.Meters.AddPagesMigratedToDevice(moved);
                    return e;
                }

                /// <summary>Migrates this driver's device pages in [<paramref name="start"/>, <paramref name="end"/>) back to system memory (see the overload).</summary>
                {{GeneratedCode}}
                {{MayBlock}}
                [global::Hmm.Dsl.Excludes({{Literal(ULockName(m))}})]
                public {{Errno}} MigrateToSystem(ulong start, ulong end) => MigrateToSystem(start, end, out _);

                /// <summary>
                /// migrate_vma device → system, piece by piece as <see cref="MigrateToDevice(ulong, ulong, out long)"/>:
                /// a system page (a 2 MiB folio for a 2 MiB device folio, else 512 base pages) per device
                /// page of this driver; {{(ioctl ? "when system memory runs out the rest stays on the device, no error (test_hmm)" : "ENOMEM when system memory runs out (what was copied still moves)")}}.
                /// </summary>
                {{GeneratedCode}}
                {{MayBlock}}
                [global::Hmm.Dsl.Excludes({{Literal(ULockName(m))}})]
                public {{Errno}} MigrateToSystem(ulong start, ulong end, out long moved)
                {
                    var e = __HmmMigrate(start, end, toDevice: false, out moved{{(ioctl ? ", out _" : "")}});
                    global::System.Threading.Interlocked.Add(ref __hmmPagesToSystem, moved);
                    if (moved != 0) Device.Meters.AddPagesMigratedFromDevice(moved);
                    return e;
                }{{(ioctl ? IoctlEntriesOverload(m) : "")}}

                {{GeneratedCode}}
                private {{Errno}} __HmmMigrate(ulong start, ulong end, bool toDevice, out long moved{{(ioctl ? ", out long entries" : "")}})
                {
                    moved = 0;{{(ioctl ? "\n        entries = 0;" : "")}}
                    if (Process is null) return {{Errno}}.EINVAL;
                    start = {{Page}}.AlignDown(start);
                    end = {{Page}}.AlignDown(end + {{Page}}.Size - 1);
                    if (start >= end) return {{Errno}}.EINVAL;
                    var mm = Process.Mm;
                    if (!mm.TryGet()) return {{Errno}}.{{(ioctl ? "EINVAL" : "EFAULT")}};
                    var s = t_hmmMigrate ??= new __HmmMigrateScratch();
                    var args = s.Args;
                    var e = {{Errno}}.Ok;
                    mm.MmapLock.ReadLock();
                    try
                    {
                        for (ulong a = start, next; a < end; a = next)
                        {
                            var vma = mm.FindVma(a);
                            {{(ioctl ? IoctlPiece : DefaultPiece)}}
                            args.Vma = vma;
                            args.Start = a;
                            args.End = next;
                            args.Src = s.Src;
                            args.Dst = s.Dst;
                            args.PgmapOwner = PgmapOwner;
                            args.FaultPage = null;
                            args.Flags = (toDevice ? global::Hmm.Runtime.Migration.MigrateSelect.System : {{deviceSelect}}){{compound}};
                            global::System.Array.Clear(s.Dst);
                            e = {{MigrateVma}}.Setup(args);
                            if (e != {{Errno}}.Ok) break;
                            try
                            {
                                int n = args.EntryCount;{{own}}
                                int copies = toDevice ? __HmmAllocateOnDevice(s, n) : __HmmAllocateInSystem(s, n, out {{(ioctl ? "_" : "e")}});{{(ioctl && m.FilterOwnMigrations ? "\n                    if (!toDevice) __HmmInvalidateCollected(mm, a, s.Dst, n);" : "")}}
                                if (copies > 0) {{copy}}
                                {{MigrateVma}}.Pages(args);{{(ioctl ? IoctlMigrated(m) : migrated)}}
                                moved += __HmmCountMoved(s.Src, n);{{(ioctl ? "\n                    entries += __HmmCountEntries(s.Src, n);" : "")}}
                            }
                            finally { {{MigrateVma}}.Finalize(args); }
                            if (e != {{Errno}}.Ok) break;
                        }
                    }
                    finally
                    {
                        mm.MmapLock.ReadUnlock();
                        mm.Put();
                    }
                    return e;
                }

                /// <summary>
                /// Destinations for system → device: a device folio per COMPOUND entry (else 512 base pages,
                /// the per-page fallback), a device page per base entry; holes are cleared on the device,
                /// data pages queued for one batched copy. Returns the copies queued.
                /// </summary>
                {{GeneratedCode}}
                private int __HmmAllocateOnDevice(__HmmMigrateScratch s, int n)
                {
                    var src = s.Src;
                    var dst = s.Dst;
                    int copies = 0;{{bulkPrologue}}
                    for (int i = 0; i < n;)
                    {
                        ulong w = src[i];
                        if ((w & {{MigratePfn}}.Migrate) == 0) { i++; continue; }
                        bool valid = {{MigratePfn}}.IsValid(w);
                        ulong spfn = w >> {{MigratePfn}}.Shift;
                        ulong write = w & {{MigratePfn}}.Write;
                        if ((w & {{MigratePfn}}.Compound) != 0)
                        {
                            if (__HmmAllocateDestination({{Page}}.PmdOrder, true, out ulong folio))
                            {
                                if (valid) s.Copies[copies++] = new {{PageCopy}}(spfn, folio, {{Page}}.PmdOrder);
                                else Device.Copy.Clear(new global::System.ReadOnlySpan<ulong>(in folio), {{Page}}.PmdOrder);
                                dst[i] = {{MigratePfn}}.FromPfn(folio) | write | {{MigratePfn}}.Compound;
                                i += {{Page}}.PmdPages;
                                continue;
                            }
                            global::System.Threading.Interlocked.Increment(ref __hmmLargeFallbacks);
                            int first = i, stop = global::System.Math.Min(n, i + {{Page}}.PmdPages);
                            for (; i < stop; i++)
                            {
                                if (!__HmmAllocateDestination(0, true, out ulong d)) break;
                                if (valid) s.Copies[copies++] = new {{PageCopy}}(spfn + (ulong)(i - first), d);
                                else Device.Copy.Clear(new global::System.ReadOnlySpan<ulong>(in d));
                                dst[i] = {{MigratePfn}}.FromPfn(d) | write;
                            }
                            i = stop;
                            continue;
                        }
                        if ({{basePage}})
                        {{{(bulk && m.Memory == null ? "\n                ulong page = s.Pages[next++];" : "")}}
                            if (valid) s.Copies[copies++] = new {{PageCopy}}(spfn, page);
                            else Device.Copy.Clear(new global::System.ReadOnlySpan<ulong>(in page));
                            dst[i] = {{MigratePfn}}.FromPfn(page) | write;
                        }
                        i++;
                    }
                    return copies;
                }

                /// <summary>
                /// Destinations for device → system: for each collected page of this driver's memory a
                /// system page (a 2 MiB folio for a COMPOUND entry, else 512 base pages). A base page that
                /// cannot be had ends the walk with ENOMEM. Returns the copies queued.
                /// </summary>
                {{GeneratedCode}}
                private int __HmmAllocateInSystem(__HmmMigrateScratch s, int n, out {{Errno}} result)
                {
                    result = {{Errno}}.Ok;
                    var src = s.Src;
                    var dst = s.Dst;
                    int copies = 0;
                    // The pages of a piece are mostly one chunk's: the last chunk found answers "is it
                    // ours" without the pagemap lookup (a collected page's chunk cannot go meanwhile).
                    {{DevPagemap}}? chunk = null;
                    for (int i = 0; i < n;)
                    {
                        ulong w = src[i];
                        if ((w & {{MigratePfn}}.Migrate) == 0 || !{{MigratePfn}}.IsValid(w)) { i++; continue; }
                        ulong spfn = w >> {{MigratePfn}}.Shift;
                        if ((chunk == null || !chunk.Contains(spfn)) && (chunk = {{mem}}.DeviceChunkOf(spfn)) == null) { i++; continue; }
                        ulong write = w & {{MigratePfn}}.Write;
                        int order = (w & {{MigratePfn}}.Compound) != 0 ? {{Page}}.PmdOrder : 0;
                        if (__HmmAllocateDestination(order, false, out ulong page))
                        {
                            s.Copies[copies++] = new {{PageCopy}}(spfn, page, order);
                            dst[i] = {{MigratePfn}}.FromPfn(page) | write | (order != 0 ? {{MigratePfn}}.Compound : 0);
                            i += 1 << order;
                            continue;
                        }
                        if (order == 0) { result = {{Errno}}.ENOMEM; break; }
                        global::System.Threading.Interlocked.Increment(ref __hmmLargeFallbacks);
                        int first = i, stop = global::System.Math.Min(n, i + {{Page}}.PmdPages);
                        for (; i < stop; i++)
                        {
                            if (!__HmmAllocateDestination(0, false, out ulong d)) { result = {{Errno}}.ENOMEM; break; }
                            s.Copies[copies++] = new {{PageCopy}}(spfn + (ulong)(i - first), d);
                            dst[i] = {{MigratePfn}}.FromPfn(d) | write;
                        }
                        if (result != {{Errno}}.Ok) break;
                    }
                    return copies;
                }

                {{(ioctl ? IoctlHelpers(m) : "")}}/// <summary>Pages whose source entry is still VALID and MIGRATE after migrate_vma_pages (a 2 MiB entry counts 512).</summary>
                {{GeneratedCode}}
                private static long __HmmCountMoved(ulong[] src, int n)
                {
                    long moved = 0;
                    const ulong done = {{MigratePfn}}.Migrate | {{MigratePfn}}.Valid;
                    for (int i = 0; i < n; i++)
                        if ((src[i] & done) == done) moved += (src[i] & {{MigratePfn}}.Compound) != 0 ? {{Page}}.PmdPages : 1;
                    return moved;
                }

                /// <summary>
                /// The default dev_pagemap_ops.migrate_to_ram: migrates the faulting page (its whole 2 MiB
                /// folio when PMD-mapped) back to system memory with FaultPage set (MIG-R08), under the
                /// mmap read lock the core already holds (MIG-R09). SigBus when setup fails or the page is
                /// not this driver's, Oom when no system page can be had.
                /// </summary>
                {{GeneratedCode}}
                private global::Hmm.Runtime.DeviceMemory.VmFaultResult __HmmMigrateToRam(in global::Hmm.Runtime.DeviceMemory.VmFault vmf)
                {
                    var chunk = {{mem}}.DeviceChunkOf(vmf.Page);
                    if (chunk == null) return global::Hmm.Runtime.DeviceMemory.VmFaultResult.SigBus;
                    int order = vmf.Mm.EntryAt(vmf.Address).IsHuge ? chunk.FolioOrder(vmf.Page) : 0;
                    ulong start = vmf.Address & ~((ulong)({{Page}}.Size << order) - 1);
                    var s = t_hmmMigrateToRam ??= new __HmmMigrateScratch();
                    var args = s.Args;
                    args.Vma = vmf.Vma;
                    args.Start = start;
                    args.End = start + ((ulong)1 << (order + {{Page}}.Shift));
                    args.Src = s.Src;
                    args.Dst = s.Dst;
                    args.PgmapOwner = PgmapOwner;
                    args.FaultPage = vmf.Page;
                    args.Flags = {{deviceSelect}}{{compound}};
                    global::System.Array.Clear(s.Dst);
                    if ({{MigrateVma}}.Setup(args) != {{Errno}}.Ok) return global::Hmm.Runtime.DeviceMemory.VmFaultResult.SigBus;
                    var result = global::Hmm.Runtime.DeviceMemory.VmFaultResult.Ok;
                    try
                    {
                        int n = args.EntryCount;{{ownRam}}
                        int copies = __HmmAllocateInSystem(s, n, out var e);
                        if (copies > 0) {{copy}}
                        if (e != {{Errno}}.Ok) result = global::Hmm.Runtime.DeviceMemory.VmFaultResult.Oom;
                        else
                        {
                            {{MigrateVma}}.Pages(args);{{migrated.Replace("\n    ", "\n")}}
                            long moved = __HmmCountMoved(s.Src, n);
                            global::System.Threading.Interlocked.Add(ref __hmmPagesToSystem, moved);
                            Device.Meters.AddPagesMigratedFromDevice(moved);
                        }
                    }
                    finally { {{MigrateVma}}.Finalize(args); }
                    return result;
                }
            }
            """;
    }
}
