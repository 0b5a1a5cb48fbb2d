using Hmm.Dsl;
using Hmm.Runtime.Scheduling;

namespace Hmm.Runtime.Locking;

/// <summary>
/// Simulates <c>spinlock_t</c>: a lock that never sleeps, e.g. <c>mdevice-&gt;lock</c> in
/// test_hmm. Holding one puts the thread in atomic context: with validation on, any
/// sleeping call (<see cref="KernelMutex.Lock()"/>, <see cref="RwSemaphore.ReadLock"/>,
/// <see cref="WaitQueue.WaitEvent{TState}"/>, <see cref="LockValidator.MightSleep(string)"/>)
/// made while holding it is reported as "sleeping function called from invalid context".
/// </summary>
/// <remarks>
/// Waiters busy-wait with <see cref="SpinWait"/>, which yields the processor but never
/// calls <c>Thread.Sleep(1)</c> — the simulated counterpart of spinning with preemption
/// disabled. Acquire and release are one interlocked operation each and allocate nothing.
/// Re-acquiring on the owning thread is reported by the validator when it is on, and
/// otherwise detected on the spin path (where it would spin forever) and thrown.
/// </remarks>
public sealed class SpinLock
{
    private int _owner; // managed thread id of the owner, 0 when free

    /// <summary>Creates a spinlock of lock class <paramref name="className"/>.</summary>
    public SpinLock(string className)
    {
        ArgumentNullException.ThrowIfNull(className);
        ClassName = className;
    }

    /// <summary>The lock class name (lockdep key).</summary>
    public string ClassName { get; }

    /// <summary>Whether any thread holds the lock (spin_is_locked).</summary>
    public bool IsLocked => Volatile.Read(ref _owner) != 0;

    /// <summary>Whether the calling thread holds the lock.</summary>
    public bool IsHeldByCurrentThread => Volatile.Read(ref _owner) == Environment.CurrentManagedThreadId;

    /// <summary>spin_lock: busy-waits, never sleeps.</summary>
    [Acquires("this")]
    public void Lock() => LockCore(0);

    /// <summary>spin_lock_nested: deliberate nesting of two spinlocks of one class (subclass 1..7).</summary>
    [Acquires("this")]
    public void Lock(int subclass)
    {
        LockValidator.ValidateSubclass(subclass);
        LockCore(subclass);
    }

    /// <summary>spin_trylock: records no ordering dependency.</summary>
    [TryAcquires("this")]
    public bool TryLock()
    {
        SchedulePoints.Reach(SchedulePointKind.Acquire, this);
        if (Interlocked.CompareExchange(ref _owner, Environment.CurrentManagedThreadId, 0) != 0)
        {
            return false;
        }

        HeldLocks.Current.Push(this, ClassName, 0, LockKind.Spin);
        return true;
    }

    /// <summary>spin_unlock: only the owner may call it.</summary>
    [Releases("this")]
    public void Unlock()
    {
        int owner = Volatile.Read(ref _owner);
        if (owner != Environment.CurrentManagedThreadId)
        {
            throw LockValidator.BadUnlock(LockKind.Spin, ClassName, owner == 0 ? "it is not locked" : $"owner is thread #{owner}");
        }

        HeldLocks.Current.Remove(this, LockKind.Spin);
        Volatile.Write(ref _owner, 0);
        SchedulePoints.Released(this);
    }

    /// <inheritdoc/>
    public override string ToString() => LockValidator.Describe(LockKind.Spin, ClassName, 0);

    private void LockCore(int subclass)
    {
        SchedulePoints.Reach(SchedulePointKind.Acquire, this);
        HeldLocks held = HeldLocks.Current;
        if (LockValidator.Enabled)
        {
            LockValidator.CheckAcquire(held, this, ClassName, subclass, LockKind.Spin);
        }

        int me = Environment.CurrentManagedThreadId;
        if (Interlocked.CompareExchange(ref _owner, me, 0) != 0)
        {
            Spin(me);
        }

        held.Push(this, ClassName, subclass, LockKind.Spin);
    }

    private void Spin(int me)
    {
        if (Volatile.Read(ref _owner) == me)
        {
            throw LockValidator.SelfDeadlock(LockKind.Spin, ClassName);
        }

        // Under exploration spinning would stall the one running thread: park until released.
        if (SchedulePoints.Hook is { } hook)
        {
            while (Interlocked.CompareExchange(ref _owner, me, 0) != 0) hook.Block(this);
            return;
        }

        var spin = new SpinWait();
        do
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }
        while (Volatile.Read(ref _owner) != 0 || Interlocked.CompareExchange(ref _owner, me, 0) != 0);
    }
}
