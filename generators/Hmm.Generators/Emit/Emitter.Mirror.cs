using Hmm.Generators.Models;

namespace Hmm.Generators;

internal static partial class Emitter
{
    // Shape of the Mirror part:
    //   partial class D : IIntervalNotifierOps
    //   {
    //       DriverName, Device, Process, DeviceTable, Instance, Notifier, PgmapOwner, counters
    //       Attach(device, process) / Detach()
    //       IIntervalNotifierOps.Invalidate  — the trampoline (U, SetSeq, own-event filter, [OnInvalidate])
    //       Fault(start, end, write) / Fault(in FaultRange) — the fault loop of the chosen MirrorSync
    //       MakeExclusive(start, end) — device-exclusive entries for device atomics
    //   }
    private static string EmitMirror(DriverModel m)
    {
        string u = U(m);
        string uName = Literal(ULockName(m));
        string owner = OwnerExpr(m);
        string ownLock = m.UpdateLock == null
            ? $$"""

                /// <summary>The update lock U (no <c>UpdateLock</c> was named): taken by the invalidate trampoline and around device-table updates.</summary>
                {{GeneratedCode}}
                private readonly {{KernelMutex}} __hmmUpdateLock = new({{Literal(m.DriverName + ".update")}});
                """
            : "";
        string attachChecks = "";
        if (m.FaultBuffer is { } fb)
            attachChecks += $$"""

                    // [FaultBuffer(Entries = {{fb.Entries}})]: the device's buffer must hold that many entries.
                    if (device.Faults.Capacity < {{fb.Entries}}) return {{Errno}}.EINVAL;
            """;
        if (m.P2pExporter || m.P2pImporter)
            attachChecks += $$"""

                    // p2p needs the device's PCI function.
                    if (device.Pci is null) return {{Errno}}.EINVAL;
            """;
        string attachP2p = m.P2pExporter ? "\n        __HmmAttachP2p(device.Pci!);" : "";
        // Shared device-level memory is plugged into the first attached driver's device.
        string attachMemory = m.Memory != null ? "\n        if (this." + m.Memory + " is { Device: null } memory) memory.AttachDeviceMemory(device);" : "";
        // [DeviceMemory(InitialChunks = N)] on the driver itself: plugged before the notifier goes in.
        if (m.HasDeviceMemory && m.DeviceMemory!.InitialChunks > 0) attachMemory += "\n        if (!__HmmHotAddInitial()) return " + Errno + ".ENOMEM;";
        string release = Call(m, CallbackKind.OnRelease, "") is { } r ? "\n        " + r : "";
        string filter = m.FilterOwnMigrations
            ? $$"""

                        // HMM-R19/R20: this driver's own MIGRATE and EXCLUSIVE events are skipped here;
                        // the migration and exclusive paths invalidate the device mapping themselves.
                        if ((range.Event == {{NotifyEvent}}.Migrate || range.Event == {{NotifyEvent}}.Exclusive)
                            && object.ReferenceEquals(range.Owner, {{owner}}))
                        {
                            __hmmOwnEventsSkipped++;
                            return true;
                        }
                """
            : "";
        string userInvalidate = Call(m, CallbackKind.OnInvalidate, "in range") is { } ui ? "\n        " + ui : "";
        string userMap = Call(m, CallbackKind.OnMirrorFault, "range, range.HmmPfns") is { } um ? "\n        " + um : "";
        // An errno-returning [OnMirrorFault]: the map step returns what it said, and a non-Ok errno ends
        // the fault (and an exclusive walk) there, as dmirror_fault stops at dmirror_do_fault's error.
        bool mapErrno = m.MirrorFaultReturnsErrno;
        string mapReturns = mapErrno ? Errno : "void";
        string mapBody = mapErrno
            ? "\n        var e = " + userMap.Trim() + "\n        __hmmPagesMirrored += range.PageCount;\n        return e;"
            : userMap + "\n        __hmmPagesMirrored += range.PageCount;";
        string exclusiveMap = mapErrno ? "\n                        e = " + userMap.Trim() : userMap.Replace("\n        ", "\n                        ");
        string exclusiveStop = mapErrno ? "\n                if (e != " + Errno + ".Ok) break;" : "";

        return $$"""
            partial class {{m.ClassName}} : global::Hmm.Runtime.Notifiers.IIntervalNotifierOps
            {
                /// <summary>The driver's name, as declared by <c>[HmmDriver]</c>.</summary>
                {{GeneratedCode}}
                public const string DriverName = {{Literal(m.DriverName)}};

                /// <summary>The -EBUSY retry bound of one fault, in milliseconds (HMM_RANGE_DEFAULT_TIMEOUT by default).</summary>
                {{GeneratedCode}}
                public const int FaultTimeoutMs = {{m.FaultTimeoutMs}};
            {{ownLock}}

                {{GeneratedCode}}
                private {{IntervalNotifier}}? __hmmNotifier;

                {{GeneratedCode}}
                private long __hmmPagesMirrored, __hmmFaultRetries, __hmmInvalidations, {{(m.FilterOwnMigrations ? "__hmmOwnEventsSkipped, " : "")}}__hmmPagesExclusive;

                // Per-thread scratch ranges, one per size up to 2 MiB (what the hand-written mirror keeps
                // per driver), so the fault loop allocates nothing after warm-up and concurrent
                // faulting threads never share a range.
                [global::System.ThreadStatic]
                {{GeneratedCode}}
                private static {{HmmRange}}?[]? t_hmmRanges;

                /// <summary>The device this driver is attached to.</summary>
                {{GeneratedCode}}
                public global::Hmm.Runtime.Devices.SimDevice Device { get; private set; } = null!;

                /// <summary>The mirrored process.</summary>
                {{GeneratedCode}}
                public global::Hmm.Runtime.Mm.Process Process { get; private set; } = null!;

                /// <summary>The device's page table for this mirror (the hardware MMU walks it).</summary>
                {{GeneratedCode}}
                public global::Hmm.Runtime.Devices.DevicePageTable DeviceTable { get; private set; } = null!;

                /// <summary>The device instance (<see cref="global::Hmm.Runtime.Devices.SimDevice.Attach"/>) of <see cref="DeviceTable"/>.</summary>
                {{GeneratedCode}}
                public int Instance { get; private set; }

                /// <summary>Whether <see cref="{{AttachCref(m)}}"/> succeeded and <see cref="Detach"/> has not run.</summary>
                {{GeneratedCode}}
                public bool IsAttached => global::System.Threading.Volatile.Read(ref __hmmNotifier) != null;

                /// <summary>The whole-address-space interval notifier (mmu_interval_notifier).</summary>
                {{GeneratedCode}}
                public {{IntervalNotifier}} Notifier => __hmmNotifier ?? throw new global::System.InvalidOperationException({{Literal(m.DriverName + ": not attached")}});

                /// <summary>The pgmap owner cookie (dev_private_owner, HMM-R17): the owner of this driver's device memory and of its MIGRATE/EXCLUSIVE events.</summary>
                {{GeneratedCode}}
                public object PgmapOwner => {{owner}};

                /// <summary>Pages programmed into the device table from successful snapshots.</summary>
                {{GeneratedCode}}
                public long PagesMirrored => global::System.Threading.Volatile.Read(ref __hmmPagesMirrored);

                /// <summary>Snapshots retried: -EBUSY from the walk or a collision seen under U.</summary>
                {{GeneratedCode}}
                public long FaultRetries => global::System.Threading.Volatile.Read(ref __hmmFaultRetries);

                /// <summary>Invalidations that tore down device mappings.</summary>
                {{GeneratedCode}}
                public long Invalidations => global::System.Threading.Volatile.Read(ref __hmmInvalidations);

                /// <summary>Own MIGRATE/EXCLUSIVE events skipped by the trampoline (HMM-R19/R20).</summary>
                {{GeneratedCode}}
                public long OwnEventsSkipped => {{(m.FilterOwnMigrations ? "global::System.Threading.Volatile.Read(ref __hmmOwnEventsSkipped)" : "0")}};

                /// <summary>Pages mapped for device atomics by <see cref="MakeExclusive"/>.</summary>
                {{GeneratedCode}}
                public long PagesExclusive => global::System.Threading.Volatile.Read(ref __hmmPagesExclusive);

                /// <summary>True while the user's <c>[OnMirrorFault]</c> callback maps device-exclusive pages (for atomics) rather than a snapshot.</summary>
                {{GeneratedCode}}
                private bool MappingExclusive { get; set; }

                /// <summary>
                /// Attaches the driver to <paramref name="device"/> and mirrors <paramref name="process"/>:
                /// a device page table for the instance and an interval notifier over the whole address
                /// space (mmu_interval_notifier_insert). EBUSY when already attached.
                /// </summary>
                {{GeneratedCode}}
                {{MayBlock}}
                [global::Hmm.Dsl.InsertsNotifier]
                public {{Errno}} Attach(global::Hmm.Runtime.Devices.SimDevice device, global::Hmm.Runtime.Mm.Process process)
                {
                    global::System.ArgumentNullException.ThrowIfNull(device);
                    global::System.ArgumentNullException.ThrowIfNull(process);
                    if (__hmmNotifier != null) return {{Errno}}.EBUSY;{{attachChecks}}
                    Device = device;
                    Process = process;{{attachMemory}}
                    DeviceTable = new global::Hmm.Runtime.Devices.DevicePageTable();
                    Instance = device.Attach(DeviceTable);
                    var notifier = new {{IntervalNotifier}}(this);
                    var e = notifier.Insert(process.Mm, 0, {{AddressSpace}}.TaskSize);
                    if (e != {{Errno}}.Ok)
                    {
                        device.Detach(Instance);
                        return e;
                    }{{attachP2p}}
                    global::System.Threading.Volatile.Write(ref __hmmNotifier, notifier);
                    return {{Errno}}.Ok;
                }{{EmitRangedAttach(m, attachChecks, attachP2p)}}

                /// <summary>
                /// Stops mirroring: removes the interval notifier (no invalidation runs afterwards), calls
                /// the <c>[OnRelease]</c> callback, clears the device table and detaches it. Idempotent.
                /// Device memory stays until <c>RemoveDeviceMemory</c>.
                /// </summary>
                {{GeneratedCode}}
                {{MayBlock}}
                [global::Hmm.Dsl.Excludes({{uName}})]
                [global::Hmm.Dsl.RemovesNotifier]
                public void Detach()
                {
                    var notifier = global::System.Threading.Interlocked.Exchange(ref __hmmNotifier, null);
                    if (notifier == null) return;
                    notifier.Remove();{{release}}
                    {{u}}.Lock();
                    try { Device.Invalidate(Instance, 0, {{AddressSpace}}.TaskSize); }
                    finally { {{u}}.Unlock(); }
                    Device.Detach(Instance);
                }

                /// <summary>
                /// mmu_interval_notifier_ops.invalidate: takes U (try-lock when the range is not
                /// blockable, returning false on contention, HMM-R08), sets the sequence under U
                /// unconditionally, then tears the device mappings down; U is released on every path.
                /// </summary>
                {{GeneratedCode}}
                bool global::Hmm.Runtime.Notifiers.IIntervalNotifierOps.Invalidate({{IntervalNotifier}} notifier, in {{NotifierRange}} range, ulong curSeq)
                {
                    var u = {{u}};
                    if (range.Blockable) u.Lock();
                    else if (!u.TryLock()) return false;
                    try
                    {
                        notifier.SetSeq(curSeq);{{Reindent(filter, 4)}}
                        __HmmInvalidateLocked(in range);
                        return true;
                    }
                    finally { u.Unlock(); }
                }

                /// <summary>Tears down the device's mappings of <paramref name="range"/>: the hardware table, then the <c>[OnInvalidate]</c> callback. U held.</summary>
                {{GeneratedCode}}
                [global::Hmm.Dsl.Requires({{uName}})]
                private void __HmmInvalidateLocked(in {{NotifierRange}} range)
                {
                    __hmmInvalidations++;
                    Device.Invalidate(Instance, range.Start, global::System.Math.Min(range.End, {{AddressSpace}}.TaskSize));{{userInvalidate}}
                }

                /// <summary>The invalidation an own MIGRATE/EXCLUSIVE event would have caused (HMM-R19): takes U.</summary>
                {{GeneratedCode}}
                [global::Hmm.Dsl.Excludes({{uName}})]
                private void __HmmInvalidateOwn({{AddressSpace}} mm, ulong start, ulong end, {{NotifyEvent}} @event)
                {
                    var range = new {{NotifierRange}}(mm, start, end, @event, blockable: true, owner: PgmapOwner);
                    {{u}}.Lock();
                    try { __HmmInvalidateLocked(in range); }
                    finally { {{u}}.Unlock(); }
                }

                /// <summary>Programs a successful snapshot: the hardware table, then the <c>[OnMirrorFault]</c> callback. U held, after the sync check said "no collision".</summary>
                {{GeneratedCode}}
                [global::Hmm.Dsl.Requires({{uName}})]
                private {{mapReturns}} __HmmMapLocked({{HmmRange}} range)
                {
                    DeviceTable.Install(range.Start, range.HmmPfns);{{mapBody}}
                }

                /// <summary>
                /// Mirrors [<paramref name="start"/>, <paramref name="end"/>) into the device (rounded out to
                /// pages, in pieces of at most 2 MiB), faulting the pages in, writable when
                /// <paramref name="write"/>: the {{SyncName(m.Sync)}} loop, the -EBUSY retries bounded by
                /// <see cref="FaultTimeoutMs"/> (then EBUSY). EINVAL when not attached or the range is empty;
                /// otherwise what hmm_range_fault returned (EFAULT, EPERM, ...).
                /// </summary>
                {{GeneratedCode}}
                {{MayBlock}}
                [global::Hmm.Dsl.Excludes({{uName}})]
                public {{Errno}} Fault(ulong start, ulong end, bool write)
                    => __HmmFault(start, end, {{HmmPfn}}.ReqFault | (write ? {{HmmPfn}}.ReqWrite : 0));

                /// <summary>Services one coalesced device fault range (<see cref="global::Hmm.Runtime.Devices.FaultBatch.Coalesce"/>): a prefetch-only range is snapshot without faulting.</summary>
                {{GeneratedCode}}
                {{MayBlock}}
                [global::Hmm.Dsl.Excludes({{uName}})]
                public {{Errno}} Fault(in {{FaultRange}} fault)
                    => __HmmFault(fault.Start, fault.End, fault.PrefetchOnly ? 0 : {{HmmPfn}}.ReqFault | (fault.Write || fault.Atomic ? {{HmmPfn}}.ReqWrite : 0));

                {{GeneratedCode}}
                private {{Errno}} __HmmFault(ulong start, ulong end, ulong flags)
                {
                    if (__hmmNotifier == null) return {{Errno}}.EINVAL;
                    start = {{Page}}.AlignDown(start);
                    end = {{Page}}.AlignDown(end + {{Page}}.Size - 1);
                    if (start >= end) return {{Errno}}.EINVAL;
                    var mm = Process.Mm;
                    if (!mm.TryGet()) return {{Errno}}.EFAULT;
                    try
                    {
                        for (ulong piece = start, next; piece < end; piece = next)
                        {
                            next = global::System.Math.Min(end, piece + {{BatchBytes(m)}});
                            var e = __HmmFaultPiece(mm, piece, next, flags);
                            if (e != {{Errno}}.Ok) return e;
                        }
                        return {{Errno}}.Ok;
                    }
                    finally { mm.Put(); }
                }

                {{GeneratedCode}}
                private {{HmmRange}} __HmmRangeFor(ulong start, ulong end, ulong flags)
                {
                    int pages = (int)((end - start) >> {{Page}}.Shift);
                    var ranges = t_hmmRanges ??= new {{HmmRange}}?[{{Page}}.PmdPages + 1];
                    var range = ranges[pages] ??= new {{HmmRange}}(__hmmNotifier!, start, end);
                    range.Notifier = __hmmNotifier;
                    range.Start = start;
                    range.End = end;
                    range.DefaultFlags = flags;
                    range.PfnFlagsMask = 0;
                    range.DevPrivateOwner = PgmapOwner;
                    global::System.Array.Clear(range.HmmPfns);
                    return range;
                }

                {{GeneratedCode}}
                private static long __HmmDeadline()
                    => global::System.Diagnostics.Stopwatch.GetTimestamp() + (global::System.Diagnostics.Stopwatch.Frequency * FaultTimeoutMs / 1000);

                /// <summary>hmm_range_fault under the mmap read lock (released on every path).</summary>
                {{GeneratedCode}}
                private {{Errno}} __HmmSnapshot({{AddressSpace}} mm, {{HmmRange}} range)
                {
                    range.NotifierSeq = __hmmNotifier!.ReadBegin();
                    mm.MmapLock.ReadLock();
                    try { return range.Fault(); }
                    finally { mm.MmapLock.ReadUnlock(); }
                }
            {{Reindent(EmitFaultPiece(m), -4)}}

                [global::System.ThreadStatic]
                {{GeneratedCode}}
                private static {{HmmRange}}? t_hmmExclusiveRange;

                /// <summary>
                /// Device atomics (make_device_exclusive): under the mmap read lock, each page of
                /// [<paramref name="start"/>, <paramref name="end"/>) gets a device-exclusive CPU entry owned
                /// by <see cref="PgmapOwner"/> (its own EXCLUSIVE event is filtered, HMM-R20) and is mapped
                /// atomic in the device table under U, with <see cref="MappingExclusive"/> set while the
                /// <c>[OnMirrorFault]</c> callback runs. EFAULT for a missing or read-only VMA, EOPNOTSUPP
                /// for non-anonymous memory; pages done before an error stay exclusive.
                /// </summary>
                {{GeneratedCode}}
                {{MayBlock}}
                [global::Hmm.Dsl.Excludes({{uName}})]
                public {{Errno}} MakeExclusive(ulong start, ulong end)
                {
                    if (__hmmNotifier == null) return {{Errno}}.EINVAL;
                    start = {{Page}}.AlignDown(start);
                    end = {{Page}}.AlignDown(end + {{Page}}.Size - 1);
                    if (start >= end) return {{Errno}}.EINVAL;
                    var mm = Process.Mm;
                    if (!mm.TryGet()) return {{Errno}}.EFAULT;
                    var range = t_hmmExclusiveRange ??= new {{HmmRange}}(__hmmNotifier, start, start + {{Page}}.Size);
                    var e = {{Errno}}.Ok;
                    mm.MmapLock.ReadLock();
                    try
                    {
                        for (ulong a = start; a < end; a += {{Page}}.Size)
                        {
                            e = global::Hmm.Runtime.DeviceMemory.DeviceExclusive.Make(mm, a, PgmapOwner, out var page);
                            if (e != {{Errno}}.Ok) break;
                            using (page)
                            {
                                range.Notifier = __hmmNotifier;
                                range.Start = a;
                                range.End = a + {{Page}}.Size;
                                range.HmmPfns[0] = {{HmmPfn}}.Make(page.Pfn, write: true);
                                {{u}}.Lock();
                                try
                                {
                                    MappingExclusive = true;
                                    DeviceTable.Install(a, range.HmmPfns, atomic: true);{{exclusiveMap}}
                                    __hmmPagesExclusive++;
                                }
                                finally
                                {
                                    MappingExclusive = false;
                                    {{u}}.Unlock();
                                }
                            }{{exclusiveStop}}
                        }
                    }
                    finally
                    {
                        mm.MmapLock.ReadUnlock();
                        mm.Put();
                    }
                    return e;
                }{{EmitSnapshot(m)}}
            }
            """;
    }

    // HmmDriver.RangedNotifier: the Attach overload whose interval notifier covers one range only
    // (an ODP umem's notifier over its MR). Emitted only when asked, so other drivers' output is unchanged.
    // With the ranged overload a bare cref to Attach would be ambiguous (CS0419).
    private static string AttachCref(DriverModel m)
        => m.RangedNotifier ? "Attach(global::Hmm.Runtime.Devices.SimDevice, global::Hmm.Runtime.Mm.Process)" : "Attach";

    private static string EmitRangedAttach(DriverModel m, string attachChecks, string attachP2p)
    {
        if (!m.RangedNotifier) return "";
        return $$"""


                /// <summary>
                /// Attaches the driver to <paramref name="device"/> and mirrors [<paramref name="start"/>,
                /// <paramref name="end"/>) of <paramref name="process"/>: a device page table for the instance
                /// and an interval notifier over that range only (mmu_interval_notifier_insert); invalidations
                /// elsewhere in the mm never reach the driver, and faults must stay inside the range.
                /// EBUSY when already attached, EINVAL for an empty or unaligned range.
                /// </summary>
                {{GeneratedCode}}
                {{MayBlock}}
                [global::Hmm.Dsl.InsertsNotifier]
                public {{Errno}} Attach(global::Hmm.Runtime.Devices.SimDevice device, global::Hmm.Runtime.Mm.Process process, ulong start, ulong end)
                {
                    global::System.ArgumentNullException.ThrowIfNull(device);
                    global::System.ArgumentNullException.ThrowIfNull(process);
                    if (__hmmNotifier != null) return {{Errno}}.EBUSY;
                    if (end <= start || !{{Page}}.IsAligned(start) || !{{Page}}.IsAligned(end)) return {{Errno}}.EINVAL;{{attachChecks}}
                    Device = device;
                    Process = process;
                    DeviceTable = new global::Hmm.Runtime.Devices.DevicePageTable();
                    Instance = device.Attach(DeviceTable);
                    var notifier = new {{IntervalNotifier}}(this);
                    var e = notifier.Insert(process.Mm, start, end - start);
                    if (e != {{Errno}}.Ok)
                    {
                        device.Detach(Instance);
                        return e;
                    }{{attachP2p}}
                    global::System.Threading.Volatile.Write(ref __hmmNotifier, notifier);
                    return {{Errno}}.Ok;
                }
            """;
    }

    private static string SyncName(int sync) => sync switch
    {
        1 => "range-lock",
        2 => "range-monitor",
        _ => "sequence-retry (read_begin / hmm_range_fault / U / read_retry)",
    };

    private static string EmitFaultPiece(DriverModel m)
    {
        string u = U(m);
        // An errno-returning [OnMirrorFault] (see EmitMirror): the piece returns what the map step said.
        bool mapErrno = m.MirrorFaultReturnsErrno;
        const string ind = "                    ";
        string lockMapped = mapErrno
            ? Errno + " mapped;\n" + ind + u + ".Lock();\n" + ind + "try { mapped = __HmmMapLocked(range); }\n" + ind + "finally { " + u + ".Unlock(); }\n" + ind + "return mapped;"
            : u + ".Lock();\n" + ind + "try { __HmmMapLocked(range); }\n" + ind + "finally { " + u + ".Unlock(); }\n" + ind + "return " + Errno + ".Ok;";
        string monitorDecl = mapErrno ? "\n            " + Errno + " result = " + Errno + ".Ok;" : "";
        string monitorMap = mapErrno ? "result = __HmmMapLocked(range);" : "__HmmMapLocked(range);";
        string monitorReturn = mapErrno ? "result" : Errno + ".Ok";
        string seqMap = mapErrno ? "return __HmmMapLocked(range);" : "__HmmMapLocked(range);\n" + ind + "return " + Errno + ".Ok;";
        return m.Sync switch
        {
            1 => $$"""

                    /// <summary>
                    /// MirrorSync.RangeLock: fault the piece in (the walk may itself invalidate, e.g. a COW
                    /// break, so no range lock is held yet), then take the range lock — overlapping
                    /// invalidations now wait for it — and take a non-faulting snapshot: if every page is
                    /// still there as requested, program it under U with no collision possible; otherwise
                    /// drop the lock and start over. -EBUSY retries bounded by <see cref="FaultTimeoutMs"/>.
                    /// </summary>
                    {{GeneratedCode}}
                    private {{Errno}} __HmmFaultPiece({{AddressSpace}} mm, ulong start, ulong end, ulong flags)
                    {
                        var range = __HmmRangeFor(start, end, flags);
                        long deadline = __HmmDeadline();
                        while (true)
                        {
                            if (global::System.Diagnostics.Stopwatch.GetTimestamp() > deadline) return {{Errno}}.EBUSY;
                            range.DefaultFlags = flags;
                            var e = __HmmSnapshot(mm, range);
                            if (e == {{Errno}}.EBUSY) { __hmmFaultRetries++; continue; }
                            if (e != {{Errno}}.Ok) return e;
                            var rangeLock = global::Hmm.Runtime.Notifiers.RangeLock.Acquire(mm, start, end);
                            try
                            {
                                range.DefaultFlags = 0;
                                e = __HmmSnapshot(mm, range);
                                if (e == {{Errno}}.EBUSY || (e == {{Errno}}.Ok && !__HmmSatisfies(range.HmmPfns, flags))) { __hmmFaultRetries++; continue; }
                                if (e != {{Errno}}.Ok) return e;
                                {{lockMapped}}
                            }
                            finally { rangeLock.Release(); }
                        }
                    }

                    /// <summary>Whether a non-faulting snapshot already satisfies the fault's request (valid, and writable if asked).</summary>
                    {{GeneratedCode}}
                    private static bool __HmmSatisfies(ulong[] hmmPfns, ulong flags)
                    {
                        if ((flags & {{HmmPfn}}.ReqFault) == 0) return true;
                        ulong need = {{HmmPfn}}.Valid | (flags & {{HmmPfn}}.ReqWrite);
                        foreach (ulong word in hmmPfns)
                            if ((word & need) != need || (word & {{HmmPfn}}.Error) != 0) return false;
                        return true;
                    }
            """,
            2 => $$"""

                    /// <summary>
                    /// MirrorSync.RangeMonitor: a range monitor over the piece records any overlapping
                    /// invalidation; snapshot, then under U program only if the monitor is still valid,
                    /// else revalidate (outside U: it waits for the invalidation, whose callback takes U)
                    /// and retry. -EBUSY retries bounded by <see cref="FaultTimeoutMs"/>.
                    /// </summary>
                    {{GeneratedCode}}
                    private {{Errno}} __HmmFaultPiece({{AddressSpace}} mm, ulong start, ulong end, ulong flags)
                    {
                        var range = __HmmRangeFor(start, end, flags);
                        long deadline = __HmmDeadline();
                        var monitor = global::Hmm.Runtime.Notifiers.RangeMonitor.Register(mm, start, end);{{monitorDecl}}
                        try
                        {
                            while (true)
                            {
                                if (global::System.Diagnostics.Stopwatch.GetTimestamp() > deadline) return {{Errno}}.EBUSY;
                                var e = __HmmSnapshot(mm, range);
                                if (e == {{Errno}}.Ok)
                                {
                                    bool mapped;
                                    {{u}}.Lock();
                                    try
                                    {
                                        mapped = monitor.Valid;
                                        if (mapped) {{monitorMap}}
                                    }
                                    finally { {{u}}.Unlock(); }
                                    if (mapped) return {{monitorReturn}};
                                }
                                else if (e != {{Errno}}.EBUSY) return e;
                                __hmmFaultRetries++;
                                monitor.Revalidate();
                            }
                        }
                        finally { monitor.Dispose(); }
                    }
            """,
            _ => $$"""

                    /// <summary>
                    /// MirrorSync.SequenceRetry (reference C): read_begin → mmap read lock → hmm_range_fault →
                    /// unlock; -EBUSY retries; then U → read_retry (a collision retries) → program → unlock U.
                    /// Retries bounded by <see cref="FaultTimeoutMs"/>, then EBUSY.
                    /// </summary>
                    {{GeneratedCode}}
                    private {{Errno}} __HmmFaultPiece({{AddressSpace}} mm, ulong start, ulong end, ulong flags)
                    {
                        var range = __HmmRangeFor(start, end, flags);
                        long deadline = __HmmDeadline();
                        while (true)
                        {
                            if (global::System.Diagnostics.Stopwatch.GetTimestamp() > deadline) return {{Errno}}.EBUSY;
                            var e = __HmmSnapshot(mm, range);
                            if (e == {{Errno}}.EBUSY) { __hmmFaultRetries++; continue; }
                            if (e != {{Errno}}.Ok) return e;
                            {{u}}.Lock();
                            try
                            {
                                if (__hmmNotifier!.ReadRetry(range.NotifierSeq)) { __hmmFaultRetries++; continue; }
                                {{seqMap}}
                            }
                            finally { {{u}}.Unlock(); }
                        }
                    }
            """,
        };
    }
}
