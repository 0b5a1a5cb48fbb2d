using Hmm.Dsl;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;
using SpinLock = Hmm.Runtime.Locking.SpinLock;

namespace Hmm.Samples.Nouveau;

/// <summary>
/// The GPU driver's SVM logic (nouveau's <c>nouveau_svm</c>/<c>nouveau_svmm</c> state, drivers.md A,
/// with the opt-in UVM policy of C): the bodies of the DSL callbacks of every GPU declaration in
/// this sample (<see cref="NouveauGpu"/> and the replay-policy variants) and the driver's ioctls
/// (bind, unload, run a kernel). It decides and bookkeeps; every notifier trampoline, fault retry
/// loop and migration sequence it needs is the generated code behind <see cref="IGeneratedGpuDriver"/>.
/// </summary>
/// <remarks>
/// Locking: the callbacks run in the contexts the generator documents — <see cref="Invalidated"/>
/// and <see cref="Mapped"/> with the update lock U held (possibly non-blockable), <see cref="Decide"/>
/// with no lock, <see cref="PageFreed"/> in atomic context. The policy state is guarded by one
/// spinlock taken after U (never the other way round) and never held across a call into generated
/// code, so invalidations the generated migrations raise can re-enter it.
/// </remarks>
public sealed partial class GpuSvm
{
    // Set while this thread runs a migration the driver started (toward VRAM, or an eviction), so
    // an own MIGRATE invalidation seen meanwhile is not mistaken for a CPU touch (migrate_to_ram).
    [ThreadStatic] private static GpuSvm? t_migrating;

    // Set while this thread runs the bottom half (ServiceAll): the generated migrations of its
    // fault ranges move pages toward the GPU.
    [ThreadStatic] private static GpuSvm? t_servicing;

    private readonly IGeneratedGpuDriver _gpu;
    private readonly KernelMutex _update;
    private readonly SpinLock _policyLock = new("nouveau.policy");
    private readonly HashSet<ulong> _exclusive = [];
    private readonly List<ulong> _gone = [];
    private readonly ulong[] _expired = new ulong[64];
    private readonly Func<ulong, bool> _isVram;
    private long _fetched, _unloadEvicted;

    // C.4 per batch (bottom-half state, touched only by the thread in ServiceAll): the pages each
    // VA block faulted on in the batch being serviced, and the blocks whose prefetch this batch
    // already decided. UVM computes a block's prefetch once per batch over all its faults.
    private readonly Dictionary<ulong, BlockMask> _batchFaulted = [];
    private readonly HashSet<ulong> _batchDecided = [];
    private FaultEntry[] _peeked = [];

    /// <summary>
    /// Creates the SVM state of <paramref name="gpu"/> (whose update lock is <paramref name="update"/>)
    /// with <paramref name="vramChunks"/> 2 MiB chunks of VRAM, in <paramref name="mode"/>.
    /// </summary>
    public GpuSvm(IGeneratedGpuDriver gpu, KernelMutex update, int vramChunks, GpuPolicyMode mode = GpuPolicyMode.Nouveau, UvmPolicyOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(gpu);
        ArgumentNullException.ThrowIfNull(update);
        _gpu = gpu;
        _update = update;
        Counters = new GpuDriverCounters();
        Policy = new GpuResidencyPolicy(vramChunks, Counters, mode, options);
        VramPages = (long)vramChunks << Page.PmdOrder;
        _isVram = pfn => _gpu.DeviceChunkOf(pfn) != null;
    }

    /// <summary>
    /// Entries the generated fault service fetches per batch (the declaration's
    /// <c>[FaultBuffer(BatchSize)]</c>): the batch the UVM prefetch looks at as a whole.
    /// </summary>
    public int FaultBatchSize { get; init; } = 4096;

    /// <summary>The residency policy (mode, UVM options, thrashing, access counters, resident blocks).</summary>
    public GpuResidencyPolicy Policy { get; }

    /// <summary>The driver's own counters (see <see cref="Snapshot"/> for the complete set).</summary>
    public GpuDriverCounters Counters { get; }

    /// <summary>VRAM pages the device has.</summary>
    public long VramPages { get; }

    /// <summary>VRAM pages in use (allocated from hot-added chunks and not yet freed).</summary>
    public long VramPagesInUse => ((long)_gpu.DeviceChunkCount << Page.PmdOrder) - _gpu.DevicePagesFree;

    private long Now => _gpu.Device.Clock.Now;

    /// <summary>
    /// UVM tools' throttling-start event for the CPU (uvm_tools_record_throttling_start): called with
    /// the faulting address and the nap (ns) when a CPU fault on a throttled page starts to nap, from
    /// <see cref="BeforeMigrateToRam"/> — before migrate_vma_setup, while the GPU still maps the page.
    /// Null (the default): no event.
    /// </summary>
    public Action<ulong, long>? CpuThrottlingStarted { get; set; }

    /// <summary>Switches the residency policy for the following runs (the property test switches at random).</summary>
    public void Switch(GpuPolicyMode mode, UvmPolicyOptions? options = null)
    {
        _policyLock.Lock();
        try { Policy.Switch(mode, options); }
        finally { _policyLock.Unlock(); }
    }

    /// <summary>
    /// Every counter: the device's (faults fetched, batches, replays, cancels), the generated code's
    /// (pages migrated each way) and the driver's own (policy, eviction, mapping statistics).
    /// </summary>
    public GpuCounterSnapshot Snapshot()
    {
        var own = Counters.Snapshot();
        var meters = _gpu.Device.Meters;
        long fetched = Interlocked.Read(ref _fetched);
        return own with
        {
            Faults = fetched,
            Duplicates = fetched - own.Serviced,
            Batches = meters.FaultBatches,
            Replays = meters.Replays,
            Cancels = meters.Cancels,
            PagesToVram = _gpu.PagesMigratedToDevice,
            PagesFromVram = _gpu.PagesMigratedToSystem + Interlocked.Read(ref _unloadEvicted),
        };
    }

    // ------------------------------------------------------------------ [FaultPolicy]

    /// <summary>
    /// [FaultPolicy]: the residency decision for one sorted, de-duplicated, coalesced fault range.
    /// nouveau mode maps in place (atomics: device-exclusive). UVM mode may stall the GPU through a
    /// throttling period, map remotely, or migrate — evicting least-recently-used blocks past the
    /// VRAM budget and migrating the density prefetch around the fault first.
    /// </summary>
    public FaultAction Decide(in FaultRange fault)
    {
        Counters.AddServiced((long)((fault.End - fault.Start) >> Page.Shift));
        // Logical permission check first (UVM C.1: faults that can never be serviced are fatal).
        // hmm_range_fault reports this driver's own VRAM pages as they are, read-only included,
        // so a write to a read-only VMA whose pages sit in VRAM would otherwise be "serviced" by a
        // read-only mapping and re-fault forever.
        if ((fault.Write || fault.Atomic) && !WritableThroughout(fault.Start, fault.End)) return FaultAction.Cancel;
        if ((fault.Write || fault.Atomic) && MappedReadOnlyInVram(fault.Start, fault.End))
        {
            // The same blind spot in a writable VMA: a VRAM page made read-only by fork's COW
            // write-protect is reported as it is, so the write would re-fault forever. Bring it
            // back to system memory, where the mirror fault's write breaks the COW.
            Evict(fault.Start, fault.End);
            return fault.Atomic && Policy.Mode == GpuPolicyMode.Nouveau ? FaultAction.Exclusive : FaultAction.MapInPlace;
        }
        if (Policy.Mode == GpuPolicyMode.Nouveau)
        {
            var action = GpuResidencyPolicy.NouveauDecision(fault);
            if (action == FaultAction.Exclusive) NoteExclusive(fault.Start, fault.End);
            return action;
        }
        t_migrating = t_servicing;

        ExpirePins();
        ResidencyDecision decision;
        int stalls = 0;
        while (true)
        {
            _policyLock.Lock();
            try { decision = Policy.Decide(fault, Now); }
            finally { _policyLock.Unlock(); }
            if (!decision.Throttled || ++stalls > 2 * Policy.Options.ThrashingPinThreshold) break;
            // C.3 phase 1: a throttled GPU fault is not serviced before its period ends; the
            // replayed access would fault again until then, so the device simply stalls until
            // the period is over and the decision is taken again.
            _gpu.Device.Clock.AdvanceTo(decision.ThrottleUntilNs);
        }
        switch (decision.Action)
        {
            case FaultAction.Exclusive:
                NoteExclusive(fault.Start, fault.End);
                return FaultAction.Exclusive;
            case FaultAction.MigrateToDevice:
                PrepareMigration(fault);
                return FaultAction.MigrateToDevice;
            default:
                return decision.Throttled ? FaultAction.MapInPlace : decision.Action;
        }
    }

    /// <summary>
    /// Before the generated migration of a faulted range (UVM mode): compute the density prefetch
    /// of its first 2 MiB block, make room under the VRAM budget, record the thrashing event, and
    /// migrate + map the prefetched pages.
    /// </summary>
    private void PrepareMigration(in FaultRange fault)
    {
        ulong block = fault.Start & ~(Page.PmdSize - 1);
        ulong blockEnd = block + Page.PmdSize;
        var faulted = BlockMask.Range(PageIn(fault.Start), fault.End >= blockEnd ? Page.PmdPages : PageIn(fault.End));
        // The block's prefetch is decided once per batch, over every page the batch faulted on in
        // it (C.4): later ranges of the same block in this batch only migrate themselves.
        bool inBatch = _batchFaulted.TryGetValue(block, out var batchFaulted);
        bool decide = !inBatch || _batchDecided.Add(block);
        if (inBatch) faulted.Or(batchFaulted);
        // Read outside the policy spinlock: AllowedPages takes the mmap lock, which may sleep.
        var resident = decide ? ResidentInVram(block) : default;
        bool populated = false;
        var allowed = decide ? AllowedPages(block, out populated) : default;
        long now = Now;
        BlockMask prefetch = default;
        _policyLock.Lock();
        try
        {
            if (decide)
            {
                prefetch = Policy.Prefetch(block, faulted, resident, allowed, populated || !resident.IsEmpty(), now);
                // Pages faulted in this batch migrate as their own faults, not as prefetch.
                prefetch.AndNot(faulted);
            }
            Policy.RecordMigration(fault.Start, fault.End, ProcessorIds.Gpu, now, ThrashingCause.FaultMigration);
        }
        finally { _policyLock.Unlock(); }

        MakeRoom((long)((fault.End - fault.Start) >> Page.Shift) + prefetch.Count(), block);
        TouchBlock(fault.Start);
        if (fault.End > blockEnd) TouchBlock(fault.End - 1);
        for (int p = 0; p < Page.PmdPages;)
        {
            if (!prefetch.Test(p)) { p++; continue; }
            int q = p;
            while (q < Page.PmdPages && prefetch.Test(q)) q++;
            long moved = MigrateAndMap(block + ((ulong)p << Page.Shift), block + ((ulong)q << Page.Shift), ThrashingCause.PrefetchMigration);
            Counters.AddPrefetched(moved);
            p = q;
        }
    }

    private static int PageIn(ulong va) => (int)(va >> Page.Shift) & (Page.PmdPages - 1);

    /// <summary>Pages of the block the GPU maps in this driver's VRAM (the resident-at-destination mask of C.4).</summary>
    private BlockMask ResidentInVram(ulong block)
    {
        var mask = default(BlockMask);
        var table = _gpu.DeviceTable;
        for (int p = 0; p < Page.PmdPages; p++)
            if (table.Lookup(block + ((ulong)p << Page.Shift), out var t) && t.Aperture == DeviceAperture.System && _gpu.DeviceChunkOf(t.Frame) != null)
                mask.Set(p);
        return mask;
    }

    /// <summary>The block's pages inside its VMA (prefetch never leaves the VMA, C.4), and whether any CPU entry exists there.</summary>
    private BlockMask AllowedPages(ulong block, out bool populated)
    {
        var mask = default(BlockMask);
        populated = false;
        var mm = _gpu.Process.Mm;
        mm.MmapLock.ReadLock();
        try
        {
            for (int p = 0; p < Page.PmdPages;)
            {
                ulong va = block + ((ulong)p << Page.Shift);
                var vma = mm.FindVma(va);
                if (vma == null || va < vma.Start) { p++; continue; }
                int end = vma.End >= block + Page.PmdSize ? Page.PmdPages : PageIn(vma.End);
                mask.Fill(p, end);
                if (Policy.Options.GpuPreferred)
                    for (int q = p; q < end && !populated; q++) populated = !mm.EntryAt(block + ((ulong)q << Page.Shift)).IsNone;
                p = end;
            }
        }
        finally { mm.MmapLock.ReadUnlock(); }
        return mask;
    }

    /// <summary>Whether the GPU maps a page of [start, end) read-only in this driver's VRAM (a write to it cannot be satisfied in place).</summary>
    private bool MappedReadOnlyInVram(ulong start, ulong end)
    {
        var table = _gpu.DeviceTable;
        for (ulong va = start; va < end; va += Page.Size)
            if (table.Lookup(va, out var t) && !t.Writable && _gpu.DeviceChunkOf(t.Frame) != null) return true;
        return false;
    }

    /// <summary>Whether every page of [start, end) lies in a VMA that allows writing.</summary>
    private bool WritableThroughout(ulong start, ulong end)
    {
        var mm = _gpu.Process.Mm;
        mm.MmapLock.ReadLock();
        try
        {
            for (ulong a = start; a < end;)
            {
                var vma = mm.FindVma(a);
                if (vma == null || a < vma.Start || (vma.Flags & VmFlags.Write) == 0) return false;
                a = vma.End;
            }
            return true;
        }
        finally { mm.MmapLock.ReadUnlock(); }
    }

    /// <summary>Records that the exclusive (atomic) path is taken for [start, end), so its revocation can be recognised.</summary>
    private void NoteExclusive(ulong start, ulong end)
    {
        // make_device_exclusive faults a VRAM page back to system memory like a CPU access would.
        t_migrating = null;
        Counters.AddExclusive();
        _policyLock.Lock();
        try
        {
            for (ulong va = start; va < end; va += Page.Size) _exclusive.Add(va);
        }
        finally { _policyLock.Unlock(); }
    }

    // ------------------------------------------------------------------ [BeforeMigrateToRam]

    /// <summary>
    /// [BeforeMigrateToRam] (the generated migrate_to_ram's first step: the core holds the mmap read
    /// lock and the fault page's lock, nothing is collected, U is not held). C.3 on the CPU side: a
    /// CPU fault on a page the CPU is being throttled on naps until the throttling period ends
    /// before the page migrates back — UVM naps before it takes anything, so the page stays in VRAM,
    /// mapped by the GPU, for the whole period. The nap is simulated time. Then the migration goes
    /// on (true): the period is over, so a retry would only find the same answer.
    /// </summary>
    public bool BeforeMigrateToRam(in VmFault vmf)
    {
        long now = Now, nap;
        _policyLock.Lock();
        try { nap = Policy.CpuNapNs(vmf.Address, now); }
        finally { _policyLock.Unlock(); }
        if (nap <= 0) return true;
        CpuThrottlingStarted?.Invoke(vmf.Address, nap);
        _gpu.Device.Clock.AdvanceTo(now + nap);
        Counters.AddCpuNap(nap);
        return true;
    }

    // ------------------------------------------------------------------ [OnInvalidate]

    /// <summary>
    /// [OnInvalidate] (U held, may be non-blockable; the generated trampoline already cleared the
    /// GPU PTEs): attributes the event. An own MIGRATE that this thread did not start is a CPU
    /// touch (migrate_to_ram, A.9) — a CPU-side migration event for thrashing detection; a CLEAR
    /// over a page mapped for atomics is the revocation of its device-exclusive entry (A.6).
    /// </summary>
    public void Invalidated(in NotifierRange range)
    {
        bool own = range.Event == NotifyEvent.Migrate && ReferenceEquals(range.Owner, _gpu.PgmapOwner);
        bool cpuTouch = own && !ReferenceEquals(t_migrating, this);
        if (!cpuTouch && range.Event is not (NotifyEvent.Clear or NotifyEvent.Unmap or NotifyEvent.Release)) return;
        long now = Now;
        _policyLock.Lock();
        try
        {
            // A throttled CPU fault already napped in BeforeMigrateToRam, before this migration began.
            if (cpuTouch) Policy.RecordMigration(range.Start, range.End, ProcessorIds.Cpu, now, ThrashingCause.FaultMigration);
            if (_exclusive.Count == 0) return;
            if (range.End - range.Start > (ulong)_exclusive.Count << Page.Shift)
            {
                // A range larger than the set (munmap, exit): walk the set instead of the range.
                _gone.Clear();
                foreach (ulong va in _exclusive)
                    if (va >= range.Start && va < range.End) _gone.Add(va);
                foreach (ulong va in _gone) Revoke(range.Event, va, now);
                return;
            }
            for (ulong va = range.Start; va < range.End; va += Page.Size)
                if (_exclusive.Contains(va)) Revoke(range.Event, va, now);
        }
        finally { _policyLock.Unlock(); }
    }

    /// <summary>The exclusive entry at <paramref name="va"/> is gone; a CLEAR is its revocation by a CPU touch. Policy lock held.</summary>
    private void Revoke(NotifyEvent ev, ulong va, long now)
    {
        _exclusive.Remove(va);
        if (ev != NotifyEvent.Clear) return;
        Counters.AddRevocation();
        Policy.RecordMigration(va, va + Page.Size, ProcessorIds.Cpu, now, ThrashingCause.Revocation);
    }

    // ------------------------------------------------------------------ [OnMirrorFault]

    /// <summary>
    /// [OnMirrorFault] (U held, after the generated code programmed the GPU PTEs from the
    /// snapshot): counts host-aperture vs VRAM entries, gives VRAM pages the atomic bit (the GPU
    /// performs atomics natively in its own memory, so only system pages need device-exclusive
    /// entries), and marks the VRAM blocks recently used for the eviction LRU (C.6).
    /// </summary>
    public void Mapped(HmmRange range, ReadOnlySpan<ulong> hmmPfns)
    {
        long system = 0, vram = 0;
        bool uvm = Policy.Mode == GpuPolicyMode.Uvm;
        ulong lastBlock = ulong.MaxValue;
        DevPagemap? chunk = null; // consecutive pages share a 2 MiB chunk: look it up once per chunk
        int run = -1;             // first index of the current run of writable VRAM pages
        for (int i = 0; i <= hmmPfns.Length; i++)
        {
            bool writableVram = false;
            if (i < hmmPfns.Length)
            {
                ulong w = hmmPfns[i];
                if (HmmPfn.IsValid(w) && (w & HmmPfn.Error) == 0)
                {
                    ulong pfn = HmmPfn.ToPfn(w);
                    if (chunk == null || !chunk.Contains(pfn)) chunk = _gpu.DeviceChunkOf(pfn);
                    if (chunk == null) system++;
                    else
                    {
                        vram++;
                        writableVram = (w & HmmPfn.Write) != 0;
                        ulong block = (range.Start + ((ulong)i << Page.Shift)) & ~(Page.PmdSize - 1);
                        if (uvm && block != lastBlock)
                        {
                            TouchBlock(block);
                            lastBlock = block;
                        }
                    }
                }
            }
            if (writableVram)
            {
                if (run < 0) run = i;
                continue;
            }
            if (run >= 0)
            {
                // Runs of writable VRAM pages get the atomic bit in one install each.
                _gpu.DeviceTable.Install(range.Start + ((ulong)run << Page.Shift), hmmPfns.Slice(run, i - run), DeviceAperture.System, atomic: true);
                run = -1;
            }
        }
        Counters.AddMappedSystem(system);
        Counters.AddMappedVram(vram);
    }

    // ------------------------------------------------------------------ [CopyPages] / [OnPageFree]

    /// <summary>[CopyPages]: the device's copy engine moves the batch (A.8: one fence per batch; the engine charges PCIe time).</summary>
    public void Copy(ReadOnlySpan<PageCopy> copies) => _gpu.Device.Copy.Copy(copies);

    /// <summary>[OnPageFree] (atomic context): a VRAM page's last reference dropped; the generated code returns it to the free list.</summary>
    public void PageFreed(ulong pfn)
    {
        _ = pfn;
        Counters.AddPageFreed();
    }
}
