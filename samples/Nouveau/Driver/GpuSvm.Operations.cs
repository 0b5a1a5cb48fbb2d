using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;

namespace Hmm.Samples.Nouveau;

public sealed partial class GpuSvm
{
    // ------------------------------------------------------------------ ioctls

    /// <summary>
    /// The SVM_BIND ioctl with MIGRATE → GPU_VRAM (drivers.md A.8): the page-aligned range is
    /// walked in 2 MiB units, VMA by VMA; each piece goes through the generated migration (copy
    /// engine copies, clears for never-touched pages) and is then mapped on the GPU at once, so a
    /// kernel that follows takes no fault. Best effort: errors are ignored and the ioctl reports
    /// success, as nouveau does. In UVM mode bind is a user hint: it resets
    /// the pages' thrashing state and evicts least-recently-used blocks past the VRAM budget.
    /// Returns the VRAM pages the range now occupies that it did not before (copied or cleared).
    /// </summary>
    public long Bind(ulong start, ulong end)
    {
        var units = new VaRange[BindPlan.UnitCount(start, end)];
        int n = BindPlan.Split(start, end, units);
        Span<VaRange> pieces = stackalloc VaRange[8];
        long total = 0;
        for (int u = 0; u < n; u++)
        {
            int count = VmaPieces(units[u].Start, units[u].End, pieces);
            for (int i = 0; i < count; i++)
            {
                var piece = pieces[i];
                if (Policy.Mode == GpuPolicyMode.Uvm)
                {
                    long now = Now;
                    _policyLock.Lock();
                    try { Policy.RecordMigration(piece.Start, piece.End, ProcessorIds.Gpu, now, ThrashingCause.UserHint); }
                    finally { _policyLock.Unlock(); }
                    MakeRoom(piece.Pages, piece.Start);
                }
                long moved = MigrateAndMap(piece.Start, piece.End, cause: null);
                if (moved > 0) TouchBlock(piece.Start);
                total += moved;
            }
        }
        Counters.AddBindPages(total);
        return total;
    }

    /// <summary>
    /// Driver unload (nouveau_dmem_fini, A.10): the client's SVMM is finished (its whole-mm
    /// notifier put, <see cref="SvmFini"/>), every VRAM page is evicted to system memory with its
    /// data, the chunks are removed, and the mirror is detached. Returns what the eviction returned.
    /// </summary>
    public Errno Unload()
    {
        SvmFini();
        long inUse = _gpu.DeviceChunkCount > 0 ? VramPagesInUse : 0;
        var e = _gpu.DeviceChunkCount > 0 ? _gpu.RemoveDeviceMemory() : Errno.Ok;
        if (e == Errno.Ok)
        {
            Interlocked.Add(ref _unloadEvicted, inUse);
            Counters.AddEviction(inUse);
        }
        _policyLock.Lock();
        try { Policy.Blocks.Clear(); }
        finally { _policyLock.Unlock(); }
        _gpu.Detach();
        return e;
    }

    /// <summary>
    /// Evicts the VRAM pages of [<paramref name="start"/>, <paramref name="end"/>) to system memory
    /// through the generated migration (what memory pressure or a user hint toward the CPU does;
    /// nouveau itself only evicts at unload). Not a thrashing event. Returns the pages moved.
    /// </summary>
    public long Evict(ulong start, ulong end)
    {
        Span<VaRange> pieces = stackalloc VaRange[8];
        long evicted = 0;
        var previous = t_migrating;
        t_migrating = this;
        try
        {
            for (ulong a = start & ~(Page.PmdSize - 1); a < end; a += Page.PmdSize)
            {
                int count = VmaPieces(Math.Max(a, start), Math.Min(a + Page.PmdSize, end), pieces);
                for (int i = 0; i < count; i++)
                {
                    _gpu.MigrateToSystem(pieces[i].Start, pieces[i].End, out long moved);
                    evicted += moved;
                }
            }
        }
        finally { t_migrating = previous; }
        if (evicted > 0) Counters.AddEviction(evicted);
        return evicted;
    }

    /// <summary>
    /// The fault-buffer bottom half: generated batches until the buffer is empty (nouveau drains
    /// everything between GET and PUT, A.11) or, in UVM mode, until the per-service caps say stop
    /// (C.1). When entries were dropped on overflow and nothing is left to fetch, one replay makes
    /// the stalled threads fault again — no fault is ever lost.
    /// </summary>
    public int ServiceAll()
    {
        ExpirePins();
        var control = Policy.Replay;
        control.BeginService();
        int total = 0;
        // Every migration the bottom half starts moves pages toward the GPU: its own MIGRATE
        // invalidations are not CPU touches (Decide clears this for the exclusive path, whose
        // make_device_exclusive may pull a VRAM page back for the CPU side).
        var previous = (t_migrating, t_servicing);
        t_migrating = this;
        t_servicing = this;
        try
        {
            while (true)
            {
                PeekBatch();
                int n = _gpu.ServiceFaults();
                if (n == 0) break;
                total += n;
                if (!control.AfterBatch(n, 0, 0).Continue) break;
            }
        }
        finally { (t_migrating, t_servicing) = previous; }
        Interlocked.Add(ref _fetched, total);
        var device = _gpu.Device;
        if (total == 0 && device.Faults.Count == 0 && device.Executor.ParkedCount > 0) device.Replay();
        return total;
    }

    /// <summary>
    /// UVM mode with prefetch on: reads the batch the generated service is about to fetch (the
    /// entries between GET and PUT, <see cref="FaultBatchSize"/> of them) and records, per 2 MiB
    /// VA block, the pages it faulted on, so each block's prefetch is decided once over the whole
    /// batch (C.4) rather than per coalesced range.
    /// </summary>
    private void PeekBatch()
    {
        _batchFaulted.Clear();
        _batchDecided.Clear();
        if (Policy.Mode != GpuPolicyMode.Uvm || !Policy.Options.PrefetchEnabled) return;
        if (_peeked.Length < FaultBatchSize) _peeked = new FaultEntry[FaultBatchSize];
        int n = _gpu.Device.Faults.Peek(_peeked.AsSpan(0, FaultBatchSize));
        int instance = _gpu.Instance;
        for (int i = 0; i < n; i++)
        {
            ref readonly var e = ref _peeked[i];
            if (e.Instance != instance || e.Access == DeviceAccess.Prefetch) continue;
            ref var mask = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_batchFaulted, e.Address & ~(Page.PmdSize - 1), out _);
            mask.Set((int)(e.Address >> Page.Shift) & (Page.PmdPages - 1));
        }
    }

    /// <summary>
    /// Access-counter servicing (C.5, UVM mode): fetches notifications in batches and, when
    /// counter-driven migration is enabled, migrates each notified region's touched 64 KiB
    /// sub-regions to VRAM (and maps them). Returns the notifications serviced.
    /// </summary>
    public int ServiceAccessCounters()
    {
        if (Policy.Mode != GpuPolicyMode.Uvm) return 0;
        Span<AccessCounterNotification> batch = stackalloc AccessCounterNotification[64];
        Span<VaRange> pieces = stackalloc VaRange[4];
        int total = 0;
        while (true)
        {
            int n;
            _policyLock.Lock();
            try { n = Policy.AccessCounters.Fetch(batch); }
            finally { _policyLock.Unlock(); }
            if (n == 0) break;
            total += n;
            if (!Policy.Options.AccessCounterMigration) continue;
            for (int i = 0; i < n; i++)
            {
                var pages = batch[i].Pages();
                ulong block = batch[i].RegionVa;
                MakeRoom(pages.Count(), block);
                for (int p = 0; p < Page.PmdPages;)
                {
                    if (!pages.Test(p)) { p++; continue; }
                    int q = p;
                    while (q < Page.PmdPages && pages.Test(q)) q++;
                    int count = VmaPieces(block + ((ulong)p << Page.Shift), block + ((ulong)q << Page.Shift), pieces);
                    for (int k = 0; k < count; k++)
                        Counters.AddCounterMigrated(MigrateAndMap(pieces[k].Start, pieces[k].End, ThrashingCause.AccessCounterMigration));
                    p = q;
                }
                TouchBlock(block);
            }
        }
        return total;
    }

    /// <summary>
    /// Runs <paramref name="kernel"/> on the GPU in this mirror's address space: pins that expired
    /// are released first, faults are serviced by <see cref="ServiceAll"/>, remote accesses feed
    /// the access counters (UVM mode), and notifications are serviced after the kernel.
    /// </summary>
    public KernelRun Run(KernelDescription kernel) => Run(kernel, afterService: null);

    /// <summary>
    /// As <see cref="Run(KernelDescription)"/>, calling <paramref name="afterService"/> after every
    /// bottom-half pass (hmmsim's report samples counters and residency there, on the simulated
    /// clock, without reaching into the runner). Null: no observer, nothing extra on the path.
    /// </summary>
    public KernelRun Run(KernelDescription kernel, Action? afterService)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ExpirePins();
        var counters = Policy.Mode == GpuPolicyMode.Uvm ? Policy.AccessCounters : null;
        var run = KernelRunner.Run(_gpu.Device, _gpu.Instance, kernel.Build(), new BottomHalf(this, afterService), counters, _isVram);
        ServiceAccessCounters();
        return run;
    }

    /// <summary>The runner's view of the bottom half (with the optional observer of each pass).</summary>
    private readonly struct BottomHalf(GpuSvm svm, Action? afterService) : IGpuFaultService
    {
        public int ServiceFaults()
        {
            int n = svm.ServiceAll();
            afterService?.Invoke();
            return n;
        }
    }

    // ------------------------------------------------------------------ shared steps

    /// <summary>
    /// The generated migration of [start, end) to VRAM, then the generated mirror fault over it so
    /// the GPU maps the new pages at once (nouveau_pfns_map, A.8). Own MIGRATE invalidations raised
    /// meanwhile are attributed to the GPU. Records a thrashing event of <paramref name="cause"/>
    /// (none for bind). Returns the pages moved.
    /// </summary>
    private long MigrateAndMap(ulong start, ulong end, ThrashingCause? cause)
    {
        long moved;
        var previous = t_migrating;
        t_migrating = this;
        try
        {
            // The generated count is of pages whose data moved; never-touched pages are cleared in
            // VRAM instead (A.8) and count here through the VRAM they took.
            long before = VramPagesInUse;
            _gpu.MigrateToDevice(start, end, out moved);
            moved = Math.Max(moved, VramPagesInUse - before);
            if (moved > 0) _gpu.Fault(start, end, write: false);
        }
        finally { t_migrating = previous; }
        if (moved > 0 && cause is { } c && Policy.Mode == GpuPolicyMode.Uvm)
        {
            long now = Now;
            _policyLock.Lock();
            try { Policy.RecordMigration(start, end, ProcessorIds.Gpu, now, c); }
            finally { _policyLock.Unlock(); }
        }
        return moved;
    }

    /// <summary>
    /// UVM oversubscription (C.6): while <paramref name="pages"/> more would not fit the VRAM
    /// budget, the least recently used block other than <paramref name="keep"/>'s is evicted to
    /// system memory, one VA block at a time. Evictions are not thrashing events. nouveau mode never
    /// evicts at run time (A.10): its migrations just fail when VRAM is full.
    /// </summary>
    private void MakeRoom(long pages, ulong keep)
    {
        if (Policy.Mode != GpuPolicyMode.Uvm) return;
        long budget = (long)Policy.ChunkBudget << Page.PmdOrder;
        Span<VaRange> pieces = stackalloc VaRange[8];
        while (VramPagesInUse + pages > budget)
        {
            ulong victim;
            _policyLock.Lock();
            try
            {
                if (!Policy.Blocks.TryPickVictim(keep, out victim)) return;
                Policy.Blocks.Remove(victim);
            }
            finally { _policyLock.Unlock(); }
            long evicted = 0;
            var previous = t_migrating;
            t_migrating = this;
            try
            {
                int count = VmaPieces(victim, victim + Page.PmdSize, pieces);
                for (int i = 0; i < count; i++)
                {
                    _gpu.MigrateToSystem(pieces[i].Start, pieces[i].End, out long moved);
                    evicted += moved;
                }
            }
            finally { t_migrating = previous; }
            Counters.AddEviction(evicted);
        }
    }

    /// <summary>Marks the block holding <paramref name="va"/> most recently used (UVM's LRU; kept in nouveau mode too so a switch finds it).</summary>
    private void TouchBlock(ulong va)
    {
        _policyLock.Lock();
        try { Policy.Blocks.Touch(va); }
        finally { _policyLock.Unlock(); }
    }

    /// <summary>Releases expired thrashing pins (C.3): their remote GPU mappings are removed under U so the next access re-evaluates.</summary>
    private void ExpirePins()
    {
        if (Policy.Mode != GpuPolicyMode.Uvm || Policy.Thrashing.PinnedPages == 0 || !_gpu.IsAttached) return;
        while (true)
        {
            int n;
            long now = Now;
            _policyLock.Lock();
            try { n = Policy.Thrashing.CollectExpiredPins(now, _expired); }
            finally { _policyLock.Unlock(); }
            if (n == 0) return;
            _update.Lock();
            try
            {
                for (int i = 0; i < n; i++) _gpu.Device.Invalidate(_gpu.Instance, _expired[i], _expired[i] + Page.Size);
            }
            finally { _update.Unlock(); }
            if (n < _expired.Length) return;
        }
    }

    /// <summary>Splits [start, end) at VMA boundaries (holes skipped) into <paramref name="pieces"/>; the migration sequences work inside one VMA.</summary>
    private int VmaPieces(ulong start, ulong end, Span<VaRange> pieces)
    {
        var mm = _gpu.Process.Mm;
        int n = 0;
        mm.MmapLock.ReadLock();
        try
        {
            for (ulong a = start; a < end && n < pieces.Length;)
            {
                var vma = mm.FindVma(a);
                if (vma == null || a < vma.Start)
                {
                    a += Page.Size;
                    continue;
                }
                ulong stop = Math.Min(end, vma.End);
                pieces[n++] = new VaRange(a, stop);
                a = stop;
            }
        }
        finally { mm.MmapLock.ReadUnlock(); }
        return n;
    }
}
