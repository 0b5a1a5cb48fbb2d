using Stopwatch = System.Diagnostics.Stopwatch;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using HmmPfn = Hmm.Runtime.Mirror.HmmPfn;
using HmmRange = Hmm.Runtime.Mirror.HmmRange;

namespace Hmm.Runtime.Tests.Support;

/// <summary>
/// A minimal GPU-style mirroring driver over a <see cref="SimDevice"/>, written by hand against
/// the public API as nouveau's SVM fault path does it (drivers.md A.3–A.4): one whole-space
/// interval notifier and device page table per process; fault servicing drains a batch, sorts,
/// de-duplicates and coalesces it, runs the canonical read_begin / hmm_range_fault / update lock /
/// read_retry loop per range, installs the result, then replays once (or cancels what failed).
/// Shared by the runtime tests and the fault-service benchmark.
/// </summary>
internal sealed class MirrorDriver : IIntervalNotifierOps, IDisposable
{
    private readonly KernelMutex _update = new("mirror.update");
    private readonly IntervalNotifier _notifier;
    private readonly FaultEntry[] _batch;
    private readonly FaultRange[] _ranges;
    private readonly HmmRange?[] _rangeBySize = new HmmRange?[Page.PmdPages + 1];

    public MirrorDriver(SimDevice device, Process process, int batchSize = 256)
    {
        Device = device;
        Process = process;
        Table = new DevicePageTable();
        Instance = device.Attach(Table);
        _batch = new FaultEntry[batchSize];
        _ranges = new FaultRange[batchSize];
        _notifier = new IntervalNotifier(this);
        var e = _notifier.Insert(process.Mm, 0, AddressSpace.TaskSize);
        if (e != Errno.Ok) throw new ErrnoException(e, "mmu_interval_notifier_insert");
    }

    public SimDevice Device { get; }
    public Process Process { get; }
    public DevicePageTable Table { get; }
    public int Instance { get; }

    /// <summary>dev_private_owner for hmm_range_fault (HMM-R17): whose device-private pages are reported in place.</summary>
    public object? DevPrivateOwner { get; set; }

    /// <summary>Pages installed into the device page table by fault servicing.</summary>
    public long PagesServiced { get; private set; }

    /// <summary>Faults cancelled because servicing failed.</summary>
    public long Cancelled { get; private set; }

    /// <summary>
    /// Services one batch: fetch, sort + de-duplicate + coalesce, fault each range, then one
    /// replay if anything succeeded. Returns the faults fetched (0 when the buffer was empty).
    /// </summary>
    public int ServiceFaults()
    {
        var batch = _batch.AsSpan();
        int n = Device.FetchFaults(batch);
        if (n == 0) return 0;
        int unique = FaultBatch.SortAndDeduplicate(batch[..n]);
        int ranges = FaultBatch.Coalesce(batch[..unique], _ranges);
        bool any = false;
        for (int r = 0; r < ranges; r++)
        {
            var range = _ranges[r];
            if (Fault(range) == Errno.Ok) { any = true; continue; }
            for (int i = 0; i < unique; i++)
                if (batch[i].Address >= range.Start && batch[i].Address < range.End) { Device.Cancel(batch[i]); Cancelled++; }
        }
        if (any) Device.Replay();
        return n;
    }

    /// <summary>Runs the device until every thread finished or failed, servicing faults in between.</summary>
    public void RunToCompletion(int maxRounds = 10_000)
    {
        for (int round = 0; round < maxRounds; round++)
        {
            Device.Run();
            if (Device.Executor.ParkedCount == 0) return;
            while (ServiceFaults() > 0) { }
            if (Device.Executor.ParkedCount > 0 && Device.Faults.Count == 0) Device.Replay();   // overflowed entries re-fault
        }
        throw new InvalidOperationException("device work did not finish");
    }

    /// <summary>The canonical mirroring sequence (reference C) for one coalesced range.</summary>
    public Errno Fault(FaultRange fault)
    {
        var mm = Process.Mm;
        if (!mm.TryGet()) return Errno.EFAULT;
        try
        {
            var range = RangeFor(fault.Start, fault.End);
            range.DevPrivateOwner = DevPrivateOwner;
            range.DefaultFlags = fault.PrefetchOnly ? 0 : HmmPfn.ReqFault | (fault.Write || fault.Atomic ? HmmPfn.ReqWrite : 0);
            long deadline = Stopwatch.GetTimestamp() + (Stopwatch.Frequency * HmmPfn.DefaultTimeoutMs / 1000);
            while (true)
            {
                if (Stopwatch.GetTimestamp() > deadline) return Errno.EBUSY;
                range.NotifierSeq = _notifier.ReadBegin();
                mm.MmapLock.ReadLock();
                Errno e;
                try { e = range.Fault(); }
                finally { mm.MmapLock.ReadUnlock(); }
                if (e == Errno.EBUSY) continue;
                if (e != Errno.Ok) return e;
                _update.Lock();
                try
                {
                    if (_notifier.ReadRetry(range.NotifierSeq)) continue;
                    Table.Install(range.Start, range.HmmPfns);
                    PagesServiced += range.PageCount;
                    return Errno.Ok;
                }
                finally { _update.Unlock(); }
            }
        }
        finally { mm.Put(); }
    }

    private HmmRange RangeFor(ulong start, ulong end)
    {
        int pages = (int)((end - start) >> Page.Shift);
        var range = _rangeBySize[pages] ??= new HmmRange(_notifier, start, end);
        range.Start = start;
        range.End = end;
        Array.Clear(range.HmmPfns);
        return range;
    }

    /// <summary>The mirror's invalidate callback (HMM-R07): take U (trylock if non-blockable), set the seq, tear down the device entries.</summary>
    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (range.Blockable) _update.Lock();
        else if (!_update.TryLock()) return false;
        try
        {
            notifier.SetSeq(curSeq);
            Device.Invalidate(Instance, range.Start, Math.Min(range.End, AddressSpace.TaskSize));
            return true;
        }
        finally { _update.Unlock(); }
    }

    public void Dispose()
    {
        _notifier.Remove();
        Device.Detach(Instance);
    }
}
