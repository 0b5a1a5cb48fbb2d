using Hmm.Runtime.Locking;
using SpinLock = Hmm.Runtime.Locking.SpinLock;

namespace Hmm.Samples.Mlx5;

/// <summary>
/// The NIC's page-fault event queue and its workers (drivers.md B.4): EQEs (at most
/// <see cref="Mlx5Options.EqEntries"/>) are drained into a pool of <see cref="Mlx5Options.FaultDescriptors"/>
/// pre-allocated fault descriptors and each serviced by a worker of a high-priority unbound
/// workqueue, so faults run concurrently; when the pool is empty the rest waits for a refill. The
/// same workers run the system-workqueue items the driver queues (asynchronous prefetch, implicit
/// child reaping). Real threads; Dispose stops them.
/// </summary>
/// <summary>A work item of the NIC's workqueue (<c>struct work_struct</c>).</summary>
internal interface IMlx5Work
{
    /// <summary>Runs the work on a workqueue thread (process context, may sleep).</summary>
    void Run();
}

internal sealed class Mlx5WorkQueue : IDisposable
{
    private readonly SpinLock _lock = new("mlx5_ib.pf_eq");
    private readonly WaitQueue _wake = new("mlx5_ib.pf_eq.work");
    private readonly WaitQueue _idle = new("mlx5_ib.wq.flush");
    private readonly Queue<PageFaultCompletion> _eq = new();
    private readonly Queue<IMlx5Work> _work = new();
    private readonly Thread[] _workers;
    private readonly Action<PageFaultCompletion> _serviceFault;
    private readonly int _eqEntries;
    private int _freeDescriptors, _busy;
    private long _deferred;
    private volatile bool _stop;

    public Mlx5WorkQueue(string name, Mlx5Options options, Action<PageFaultCompletion> serviceFault)
    {
        _serviceFault = serviceFault;
        _eqEntries = options.EqEntries;
        _freeDescriptors = options.FaultDescriptors;
        // Workers = 0 (exploration): no real thread; logical threads run the queue with RunPending.
        if (options.Workers < 0 || (options.Workers == 0 && !options.InlineFaults))
            throw new ArgumentException("a NIC without workers needs InlineFaults (nothing would service the EQ)", nameof(options));
        _workers = new Thread[options.Workers];
        for (int i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Thread(Run) { IsBackground = true, Name = $"{name}.pf_wq/{i}" };
            _workers[i].Start();
        }
    }

    /// <summary>EQEs that found the descriptor pool empty and waited for a refill.</summary>
    public long Deferred => Interlocked.Read(ref _deferred);

    /// <summary>Raises a fault EQE; false when the EQ is full (the hardware would drop it and retry).</summary>
    public bool RaiseFault(PageFaultCompletion fault)
    {
        _lock.Lock();
        try
        {
            if (_eq.Count >= _eqEntries) return false;
            _eq.Enqueue(fault);
            if (_freeDescriptors == 0) Interlocked.Increment(ref _deferred);
        }
        finally { _lock.Unlock(); }
        _wake.WakeUpAll();
        return true;
    }

    /// <summary>queue_work on the unbound system workqueue. Never sleeps (callable from a notifier callback).</summary>
    public void Queue(IMlx5Work work)
    {
        _lock.Lock();
        try { _work.Enqueue(work); }
        finally { _lock.Unlock(); }
        _wake.WakeUpAll();
    }

    /// <summary>flush_workqueue: sleeps until every queued item and fault has run (without workers: runs them on the caller).</summary>
    public void Flush()
    {
        if (_workers.Length == 0)
        {
            RunPending();
            return;
        }
        _idle.WaitEvent(this, static q => q.IsIdle());
    }

    /// <summary>
    /// Runs every queued work item on the calling thread, as a worker would (a queue built with no
    /// workers: exploration runs the workqueue as a logical thread of the controlled scheduler).
    /// Returns the items run.
    /// </summary>
    public int RunPending()
    {
        int ran = 0;
        while (true)
        {
            IMlx5Work? work = null;
            _lock.Lock();
            try
            {
                if (_work.Count > 0)
                {
                    work = _work.Dequeue();
                    _busy++;
                }
            }
            finally { _lock.Unlock(); }
            if (work == null) return ran;
            try { work.Run(); }
            finally
            {
                _lock.Lock();
                try { _busy--; }
                finally { _lock.Unlock(); }
            }
            ran++;
        }
    }

    private bool IsIdle()
    {
        _lock.Lock();
        try { return _eq.Count == 0 && _work.Count == 0 && _busy == 0; }
        finally { _lock.Unlock(); }
    }

    private bool HasWork()
    {
        if (_stop) return true;
        _lock.Lock();
        try { return (_eq.Count > 0 && _freeDescriptors > 0) || _work.Count > 0; }
        finally { _lock.Unlock(); }
    }

    private void Run()
    {
        while (true)
        {
            _wake.WaitEvent(this, static q => q.HasWork());
            if (_stop) return;
            PageFaultCompletion? fault = null;
            IMlx5Work? work = null;
            _lock.Lock();
            try
            {
                if (_eq.Count > 0 && _freeDescriptors > 0)
                {
                    fault = _eq.Dequeue();
                    _freeDescriptors--;
                }
                else if (_work.Count > 0) work = _work.Dequeue();
                if (fault != null || work != null) _busy++;
            }
            finally { _lock.Unlock(); }
            try
            {
                if (fault != null) _serviceFault(fault);
                else work?.Run();
            }
            finally
            {
                _lock.Lock();
                try
                {
                    if (fault != null) _freeDescriptors++;
                    if (fault != null || work != null) _busy--;
                }
                finally { _lock.Unlock(); }
                _wake.WakeUpAll();
                _idle.WakeUpAll();
            }
        }
    }

    public void Dispose()
    {
        _stop = true;
        _wake.WakeUpAll();
        foreach (var t in _workers) t.Join();
    }
}
