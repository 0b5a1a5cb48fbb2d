using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using Hmm.Runtime.Scheduling;

namespace Hmm.Runtime.Mm;

/// <summary>
/// Simulates the kernel's system workqueue (<c>system_wq</c> with <c>schedule_work</c> /
/// <c>flush_scheduled_work</c>): work queued from a context that must not run it — a notifier
/// callback, atomic context, a holder of locks the work needs — runs later in process context
/// on a worker (a kworker), holding none of the queuer's locks. Used by
/// <see cref="AddressSpace.PutDeferred"/> (mmput_async).
/// </summary>
/// <remarks>
/// Outside an exploration each item runs on a thread-pool thread (the kworker). During a
/// systematic exploration (<see cref="SchedulePoints.Hook"/> set) no thread outside the
/// controlled scheduler may take runtime locks, so items wait for <see cref="Flush"/>, which runs
/// them on the caller — as if the kworker was scheduled at that point. A failure of an item
/// (a <see cref="KernelBugException"/>, say) is kept and rethrown by the next <see cref="Flush"/>.
/// </remarks>
public sealed class SystemWorkqueue
{
    private readonly ConcurrentQueue<Action> _queued = new();
    private readonly object _idle = new();
    private int _pending;
    private Exception? _failure;

    internal SystemWorkqueue() { }

    /// <summary>Work queued or running.</summary>
    public int Pending => Volatile.Read(ref _pending);

    /// <summary>schedule_work: queues <paramref name="work"/> to run later in process context.</summary>
    internal void Queue(Action work)
    {
        Interlocked.Increment(ref _pending);
        _queued.Enqueue(work);
        if (SchedulePoints.Hook is null) ThreadPool.UnsafeQueueUserWorkItem(static q => ((SystemWorkqueue)q!).RunOne(), this);
    }

    /// <summary>
    /// flush_scheduled_work: returns once everything queued before the call has run (items not
    /// yet picked up by a worker run on the caller). The caller must not hold locks the work takes.
    /// The queue carries deferred mm puts (exit teardown runs the notifiers' release), so a
    /// notifier callback must never flush it (the analyzers' [WaitsForWork] rule, HMM1036).
    /// </summary>
    [Hmm.Dsl.MayBlock]
    [Hmm.Dsl.WaitsForWork]
    public void Flush()
    {
        while (RunOne()) { }
        lock (_idle)
            while (Volatile.Read(ref _pending) != 0) Monitor.Wait(_idle);
        if (Interlocked.Exchange(ref _failure, null) is { } failure) ExceptionDispatchInfo.Throw(failure);
    }

    private bool RunOne()
    {
        if (!_queued.TryDequeue(out var work)) return false;
        try { work(); }
        catch (Exception e) { Interlocked.CompareExchange(ref _failure, e, null); }
        finally
        {
            if (Interlocked.Decrement(ref _pending) == 0)
                lock (_idle) Monitor.PulseAll(_idle);
        }
        return true;
    }
}
