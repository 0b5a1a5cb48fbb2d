using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Scheduling;

namespace Hmm.Runtime.Notifiers;

/// <summary>
/// Simulates the <c>srcu_struct</c> that mm/mmu_notifier.c keeps for its whole-mm subscriptions:
/// the read side brackets every walk of an mm's subscription list (invalidate start/end, release,
/// the young-bit queries); <see cref="Synchronize"/> is <c>synchronize_srcu</c>,
/// <see cref="Call"/> is <c>call_srcu</c> (mmu_notifier_put's deferred free) and
/// <see cref="Barrier"/> is <c>srcu_barrier</c> (mmu_notifier_synchronize).
/// </summary>
/// <remarks>
/// <para>The kernel has one such domain for the whole kernel; the simulator has one per
/// <see cref="Machine"/> (a machine is one simulated kernel), so tests do not wait for each
/// other's frees.</para>
/// <para>Readers count in one of two slots chosen by the epoch. A grace period (serialised by a
/// mutex) drains the other slot, flips the epoch, then drains the slot readers used before the
/// flip — as synchronize_srcu looks at idx ^ 1 before flipping, so a reader that read the epoch
/// just before a previous flip but counted itself after that flip looked is still waited for.
/// Readers may sleep (notifier callbacks do), so the grace period sleeps on a wait queue rather
/// than spinning.</para>
/// <para>Deferred callbacks run on a thread-pool thread (srcu's callback worker) once a grace
/// period has elapsed. During a systematic exploration (<see cref="SchedulePoints.Hook"/> set)
/// no thread outside the controlled scheduler may run driver code, so callbacks wait for
/// <see cref="Barrier"/>, which runs them on its caller. A callback's exception is kept and
/// rethrown by the next <see cref="Barrier"/>.</para>
/// </remarks>
internal sealed class NotifierSrcu
{
    private static readonly ConditionalWeakTable<Machine, NotifierSrcu> s_domains = new();

    /// <summary>Read-side sections of any domain open on this thread (synchronize inside one deadlocks).</summary>
    [ThreadStatic] private static int t_readDepth;

    private readonly int[] _readers = new int[2];
    private int _epoch;
    private readonly KernelMutex _gracePeriodMutex = new("mmu_notifier_srcu.gp_mutex");
    private readonly WaitQueue _readersDrained = new("mmu_notifier_srcu.readers");
    private readonly WaitQueue _callbacksDone = new("mmu_notifier_srcu.barrier");
    private readonly ConcurrentQueue<(Action<object> Callback, object State)> _callbacks = new();
    private int _pendingCallbacks;
    private Exception? _failure;

    private NotifierSrcu() { }

    /// <summary>The domain of <paramref name="machine"/> (created on first use).</summary>
    internal static NotifierSrcu Of(Machine machine) => s_domains.GetValue(machine, static _ => new NotifierSrcu());

    /// <summary>The domain of <paramref name="machine"/>, or null when nothing ever used it.</summary>
    internal static NotifierSrcu? Existing(Machine machine) => s_domains.TryGetValue(machine, out var d) ? d : null;

    /// <summary>Whether the calling thread is inside a read-side section.</summary>
    internal static bool InReadSection => t_readDepth > 0;

    /// <summary>call_srcu callbacks queued or running (tests, invariants).</summary>
    internal int PendingCallbacks => Volatile.Read(ref _pendingCallbacks);

    /// <summary>srcu_read_lock: returns the token for <see cref="ReadUnlock"/>. Never sleeps.</summary>
    internal int ReadLock()
    {
        int idx = Volatile.Read(ref _epoch) & 1;
        // Full fence: the list walk that follows cannot be ordered before the count is visible.
        Interlocked.Increment(ref _readers[idx]);
        t_readDepth++;
        return idx;
    }

    /// <summary>srcu_read_unlock.</summary>
    internal void ReadUnlock(int token)
    {
        t_readDepth--;
        if (Interlocked.Decrement(ref _readers[token]) == 0) _readersDrained.WakeUpAll();
    }

    /// <summary>
    /// synchronize_srcu: returns once every read-side section begun before the call has ended.
    /// Sleeps. Called inside a read-side section it would wait for itself: the kernel deadlocks
    /// (lockdep reports it); the simulator throws NTF-R04.
    /// </summary>
    internal void Synchronize()
    {
        if (t_readDepth > 0)
            throw new KernelBugException("NTF-R04", "synchronize_srcu on the mmu_notifier srcu from inside one of its read-side sections (mmu_notifier_unregister or mmu_notifier_synchronize from a notifier callback): it would wait for itself");
        LockValidator.MightSleep("synchronize_srcu");
        _gracePeriodMutex.Lock();
        try
        {
            int current = Interlocked.CompareExchange(ref _epoch, 0, 0) & 1;
            Drain(current ^ 1);
            Interlocked.Increment(ref _epoch);
            Drain(current);
        }
        finally
        {
            _gracePeriodMutex.Unlock();
        }
    }

    private void Drain(int slot)
        => _readersDrained.WaitEvent((this, slot), static s => Volatile.Read(ref s.Item1._readers[s.Item2]) == 0);

    /// <summary>
    /// call_srcu: runs <paramref name="callback"/>(<paramref name="state"/>) after a grace period,
    /// on another thread, never in the caller. Never sleeps.
    /// </summary>
    internal void Call(Action<object> callback, object state)
    {
        Interlocked.Increment(ref _pendingCallbacks);
        _callbacks.Enqueue((callback, state));
        if (SchedulePoints.Hook is null) ThreadPool.UnsafeQueueUserWorkItem(static d => ((NotifierSrcu)d!).RunOne(), this);
    }

    /// <summary>
    /// srcu_barrier: returns once every callback queued by <see cref="Call"/> before the call has
    /// run. Sleeps; must not be called from a read-side section (NTF-R04).
    /// </summary>
    internal void Barrier()
    {
        if (t_readDepth > 0)
            throw new KernelBugException("NTF-R04", "srcu_barrier (mmu_notifier_synchronize) from inside an mmu_notifier srcu read-side section: it would wait for itself");
        LockValidator.MightSleep("srcu_barrier");
        while (RunOne()) { }
        _callbacksDone.WaitEvent(this, static d => Volatile.Read(ref d._pendingCallbacks) == 0);
        if (Interlocked.Exchange(ref _failure, null) is { } failure) ExceptionDispatchInfo.Throw(failure);
    }

    private bool RunOne()
    {
        if (!_callbacks.TryDequeue(out var item)) return false;
        try
        {
            Synchronize();
            item.Callback(item.State);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _failure, e, null);
        }
        finally
        {
            if (Interlocked.Decrement(ref _pendingCallbacks) == 0) _callbacksDone.WakeUpAll();
        }
        return true;
    }
}
