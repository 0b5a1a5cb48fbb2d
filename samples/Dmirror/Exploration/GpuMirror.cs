using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;

namespace Hmm.Samples.TestHmm.Exploration;

/// <summary>
/// A small GPU-style mirror with a replayable fault buffer, as nouveau's SVM path services it:
/// fetch a batch, coalesce, then per range read_begin → hmm_range_fault under the mmap read
/// lock → update lock U → read_retry → program the device page table → replay. The canonical
/// steps are virtual so a test can plant one bug in an otherwise correct driver.
/// </summary>
public class GpuMirror : IIntervalNotifierOps
{
    private const int MaxRetries = 64;
    private readonly IntervalNotifier _notifier;
    private readonly FaultEntry[] _batch = new FaultEntry[64];
    private readonly FaultRange[] _ranges = new FaultRange[64];

    /// <summary>Mirrors <paramref name="process"/> on <paramref name="device"/>.</summary>
    public GpuMirror(SimDevice device, Process process)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(process);
        Device = device;
        Process = process;
        Table = new Hmm.Runtime.Devices.DevicePageTable();
        Instance = device.Attach(Table);
        _notifier = new IntervalNotifier(this);
        Errno e = _notifier.Insert(process.Mm, 0, AddressSpace.TaskSize);
        if (e != Errno.Ok) throw new ErrnoException(e, "mmu_interval_notifier_insert");
    }

    /// <summary>The device.</summary>
    public SimDevice Device { get; }

    /// <summary>The mirrored process.</summary>
    public Process Process { get; }

    /// <summary>The device page table (guarded by <see cref="Update"/>).</summary>
    public Hmm.Runtime.Devices.DevicePageTable Table { get; }

    /// <summary>The address-space instance on the device.</summary>
    public int Instance { get; }

    /// <summary>The update lock U (the driver's svmm mutex).</summary>
    protected KernelMutex Update { get; } = new("gpu.svmm");

    /// <summary>The interval notifier.</summary>
    protected IntervalNotifier Notifier => _notifier;

    /// <summary>Runs the launched device work to completion, servicing faults between passes.</summary>
    public void RunToCompletion(int maxRounds = 64)
    {
        for (int round = 0; round < maxRounds; round++)
        {
            Device.Run();
            if (Device.Executor.ParkedCount == 0) return;
            while (Service() > 0) { }
            if (Device.Executor.ParkedCount > 0 && Device.Faults.Count == 0) Device.Replay();   // overflowed entries fault again
        }

        throw new InvalidOperationException("device work did not finish");
    }

    /// <summary>Services one fault batch; returns the entries fetched.</summary>
    public int Service()
    {
        Span<FaultEntry> batch = _batch;
        int n = Device.FetchFaults(batch);
        if (n == 0) return 0;
        int unique = FaultBatch.SortAndDeduplicate(batch[..n]);
        int ranges = FaultBatch.Coalesce(batch[..unique], _ranges);
        bool any = false;
        for (int r = 0; r < ranges; r++)
        {
            if (Fault(_ranges[r]) == Errno.Ok) { any = true; continue; }
            for (int i = 0; i < unique; i++)
                if (batch[i].Address >= _ranges[r].Start && batch[i].Address < _ranges[r].End) Device.Cancel(batch[i]);
        }

        if (any) Device.Replay();
        return n;
    }

    /// <summary>The canonical mirroring sequence for one coalesced range (a bounded retry count instead of a wall-clock timeout, so a schedule is deterministic).</summary>
    public virtual Errno Fault(FaultRange fault)
    {
        AddressSpace mm = Process.Mm;
        if (!mm.TryGet()) return Errno.EFAULT;
        try
        {
            var range = new HmmRange(_notifier, fault.Start, fault.End)
            {
                DefaultFlags = HmmPfn.ReqFault | (fault.Write || fault.Atomic ? HmmPfn.ReqWrite : 0),
            };
            for (int attempt = 0; attempt < MaxRetries; attempt++)
            {
                range.NotifierSeq = _notifier.ReadBegin();
                mm.MmapLock.ReadLock();
                Errno e;
                try { e = range.Fault(); }
                finally { mm.MmapLock.ReadUnlock(); }
                if (e == Errno.EBUSY) continue;
                if (e != Errno.Ok) return e;
                Update.Lock();
                try
                {
                    if (MustRetry(range.NotifierSeq)) continue;
                    Program(range);
                    return Errno.Ok;
                }
                finally { Update.Unlock(); }
            }

            return Errno.EBUSY;
        }
        finally { mm.Put(); }
    }

    /// <summary>mmu_interval_read_retry under U: whether an invalidation ran since read_begin.</summary>
    [Hmm.Dsl.ReadRetry]
    protected virtual bool MustRetry(ulong seq) => _notifier.ReadRetry(seq);

    /// <summary>Programs the device page table from a faulted range (U held).</summary>
    protected virtual void Program(HmmRange range)
    {
        ArgumentNullException.ThrowIfNull(range);
        Table.Install(range.Start, range.HmmPfns);
    }

    /// <inheritdoc/>
    public virtual bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        ArgumentNullException.ThrowIfNull(notifier);
        if (range.Blockable) Update.Lock();
        else if (!Update.TryLock()) return false;
        try
        {
            notifier.SetSeq(curSeq);
            Device.Invalidate(Instance, range.Start, Math.Min(range.End, AddressSpace.TaskSize));
            return true;
        }
        finally { Update.Unlock(); }
    }

    /// <summary>Stops mirroring.</summary>
    public void Detach()
    {
        _notifier.Remove();
        Device.Detach(Instance);
    }
}
