using Hmm.Dsl;
using Hmm.Runtime.Scheduling;

namespace Hmm.Runtime.Locking;

/// <summary>
/// Simulates <c>struct mutex</c>: a sleeping, non-recursive lock with an owner, e.g. a
/// driver's update lock U (<c>dmirror-&gt;mutex</c>).
/// </summary>
/// <remarks>
/// <para>Uncontended acquire and release are one compare-exchange each plus a push/pop on
/// the thread's held-lock stack; nothing allocates. Under contention the caller spins
/// briefly (the optimistic spinning of the kernel mutex) and then sleeps on a private
/// monitor — the only place a monitor is used, so everything else in the runtime can be
/// validated through this type.</para>
/// <para>Only the owner may unlock (the kernel's DEBUG_MUTEXES check); anything else throws
/// <see cref="KernelBugException"/> with rule <c>LOCKDEP</c>. Taking the mutex again on the
/// owning thread is reported by the validator when it is on; when it is off, the thread
/// notices on the slow path, just before it would sleep forever, and throws instead, so
/// the fast path pays nothing for it.</para>
/// </remarks>
public sealed class KernelMutex
{
    private const int SpinIterations = 20;

    private readonly object _gate = new();
    private int _owner;     // managed thread id of the owner, 0 when free
    private int _sleepers;  // threads inside the slow path's monitor

    /// <summary>Creates a mutex of lock class <paramref name="className"/>.</summary>
    public KernelMutex(string className)
    {
        ArgumentNullException.ThrowIfNull(className);
        ClassName = className;
    }

    /// <summary>The lock class name (lockdep key).</summary>
    public string ClassName { get; }

    /// <summary>Whether any thread holds the mutex (mutex_is_locked).</summary>
    public bool IsLocked => Volatile.Read(ref _owner) != 0;

    /// <summary>Whether the calling thread holds the mutex (lockdep_is_held).</summary>
    public bool IsHeldByCurrentThread => Volatile.Read(ref _owner) == Environment.CurrentManagedThreadId;

    /// <summary>mutex_lock: may sleep.</summary>
    [MayBlock]
    [Acquires("this")]
    public void Lock() => LockCore(0);

    /// <summary>
    /// mutex_lock_nested: like <see cref="Lock()"/>, but tells the validator this is a
    /// deliberate nesting of two mutexes of one class (subclass 1..7 is a separate class).
    /// </summary>
    [MayBlock]
    [Acquires("this")]
    public void Lock(int subclass)
    {
        LockValidator.ValidateSubclass(subclass);
        LockCore(subclass);
    }

    /// <summary>mutex_trylock: never sleeps and records no ordering dependency.</summary>
    [TryAcquires("this")]
    public bool TryLock()
    {
        SchedulePoints.Reach(SchedulePointKind.Acquire, this);
        int me = Environment.CurrentManagedThreadId;
        if (Interlocked.CompareExchange(ref _owner, me, 0) != 0)
        {
            return false;
        }

        HeldLocks.Current.Push(this, ClassName, 0, LockKind.Mutex);
        return true;
    }

    /// <summary>mutex_unlock: only the owner may call it.</summary>
    [Releases("this")]
    public void Unlock()
    {
        int me = Environment.CurrentManagedThreadId;
        int owner = Volatile.Read(ref _owner);
        if (owner != me)
        {
            throw LockValidator.BadUnlock(LockKind.Mutex, ClassName, owner == 0 ? "it is not locked" : $"owner is thread #{owner}");
        }

        HeldLocks.Current.Remove(this, LockKind.Mutex);

        // Exchange is a full fence: either a sleeper's compare-exchange sees 0, or we see
        // its _sleepers increment and wake it (the Dekker pair with LockSlow).
        Interlocked.Exchange(ref _owner, 0);
        if (Volatile.Read(ref _sleepers) != 0)
        {
            lock (_gate)
            {
                Monitor.Pulse(_gate);
            }
        }

        SchedulePoints.Released(this);
    }

    /// <inheritdoc/>
    public override string ToString() => LockValidator.Describe(LockKind.Mutex, ClassName, 0);

    private void LockCore(int subclass)
    {
        SchedulePoints.Reach(SchedulePointKind.Acquire, this);
        HeldLocks held = HeldLocks.Current;
        if (LockValidator.Enabled)
        {
            LockValidator.MightSleep(LockKind.Mutex, ClassName, subclass);
            LockValidator.CheckAcquire(held, this, ClassName, subclass, LockKind.Mutex);
        }

        int me = Environment.CurrentManagedThreadId;
        if (Interlocked.CompareExchange(ref _owner, me, 0) != 0)
        {
            LockSlow(me);
        }

        held.Push(this, ClassName, subclass, LockKind.Mutex);
    }

    private void LockSlow(int me)
    {
        if (Volatile.Read(ref _owner) == me)
        {
            throw LockValidator.SelfDeadlock(LockKind.Mutex, ClassName);
        }

        // Under exploration the logical thread parks in the scheduler, never in the monitor.
        if (SchedulePoints.Hook is { } hook)
        {
            while (Interlocked.CompareExchange(ref _owner, me, 0) != 0) hook.Block(this);
            return;
        }

        // Optimistic spin: the owner is often about to release.
        var spin = new SpinWait();
        for (int i = 0; i < SpinIterations; i++)
        {
            spin.SpinOnce(sleep1Threshold: -1);
            if (Volatile.Read(ref _owner) == 0 && Interlocked.CompareExchange(ref _owner, me, 0) == 0)
            {
                return;
            }
        }

        lock (_gate)
        {
            Interlocked.Increment(ref _sleepers);
            try
            {
                while (Interlocked.CompareExchange(ref _owner, me, 0) != 0)
                {
                    Monitor.Wait(_gate);
                }
            }
            finally
            {
                Interlocked.Decrement(ref _sleepers);
            }
        }
    }
}
