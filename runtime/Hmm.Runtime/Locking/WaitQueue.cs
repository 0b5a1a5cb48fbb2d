using Hmm.Runtime.Scheduling;

namespace Hmm.Runtime.Locking;

/// <summary>
/// Simulates <c>wait_queue_head_t</c> with <c>wait_event</c> / <c>wake_up_all</c>, e.g. the
/// queue <c>mmu_interval_read_begin</c> sleeps on until an invalidation ends.
/// </summary>
/// <remarks>
/// <para>The waiter re-evaluates its condition after every <see cref="WakeUpAll"/> and
/// sleeps again while it is false; no wake-up is missed (see <see cref="WakeUpAll"/>), so
/// there is no polling. As in the kernel, the waker must make the condition true
/// <i>before</i> calling <see cref="WakeUpAll"/>.</para>
/// <para>The condition is evaluated while the queue's private monitor is held: it must be
/// a quick check of shared state (as kernel conditions are), not something that blocks.</para>
/// </remarks>
public sealed class WaitQueue
{
    private readonly object _gate = new();
    private int _waiters;

    /// <summary>Creates a wait queue named <paramref name="name"/>.</summary>
    public WaitQueue(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        Name = name;
    }

    /// <summary>The queue's name.</summary>
    public string Name { get; }

    /// <summary>Whether some thread is waiting on the queue (waitqueue_active).</summary>
    public bool HasWaiters => Volatile.Read(ref _waiters) != 0;

    /// <summary>Threads currently waiting (tests).</summary>
    internal int WaiterCount => Volatile.Read(ref _waiters);

    /// <summary>
    /// wait_event: sleeps until <paramref name="condition"/>(<paramref name="state"/>) is
    /// true. May sleep, so it first calls <see cref="LockValidator.MightSleep(string)"/>;
    /// returns at once if the condition already holds. The state parameter lets callers
    /// pass a static lambda and allocate nothing.
    /// </summary>
    public void WaitEvent<TState>(TState state, Func<TState, bool> condition)
    {
        ArgumentNullException.ThrowIfNull(condition);
        if (LockValidator.Enabled)
        {
            LockValidator.MightSleep("wait_event on " + Name);
        }

        SchedulePoints.Reach(SchedulePointKind.MaySleep, this);
        if (condition(state))
        {
            return;
        }

        if (SchedulePoints.Hook is { } hook)
        {
            Interlocked.Increment(ref _waiters);
            try { while (!condition(state)) hook.Block(this); }
            finally { Interlocked.Decrement(ref _waiters); }
            return;
        }

        lock (_gate)
        {
            // Announce before re-checking: WakeUpAll reads _waiters after the waker made the
            // condition true, so either we see the new state here or it sees us and pulses
            // (it needs _gate, which we only give up inside Monitor.Wait).
            Interlocked.Increment(ref _waiters);
            try
            {
                while (!condition(state))
                {
                    Monitor.Wait(_gate);
                }
            }
            finally
            {
                Interlocked.Decrement(ref _waiters);
            }
        }
    }

    /// <summary>wake_up_all: wakes every waiter so each re-checks its condition. Never sleeps.</summary>
    public void WakeUpAll()
    {
        // Orders the caller's condition update before the read of _waiters.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _waiters) != 0)
        {
            lock (_gate)
            {
                Monitor.PulseAll(_gate);
            }
        }

        SchedulePoints.Released(this);
    }

    /// <inheritdoc/>
    public override string ToString() => "wait queue '" + Name + "'";
}
