namespace Hmm.Runtime.Locking;

/// <summary>
/// Simulates a lockdep map (<c>struct lockdep_map</c> used with lock_map_acquire /
/// lock_map_release): a pseudo-lock that takes part in ordering checks without excluding
/// anyone. The kernel annotates <c>mmu_interval_read_begin</c> and the invalidate path
/// with <c>__mmu_notifier_invalidate_range_start_map</c>: the core acquires the map around
/// the notifier callbacks (which take the driver's update lock U), and read_begin briefly
/// acquires it too. A driver that calls read_begin while holding U thus records U → map,
/// against map → U from the callbacks, and the validator reports the inversion (rule
/// HMM-R03) even if the deadlock never happened.
/// </summary>
/// <remarks>
/// Any number of threads may "hold" a map at once. Holds are pushed on the thread's
/// held-lock stack like real locks (so a callback that returns holding a map is caught by
/// <see cref="LockValidator.CheckReleasedSince"/>); with validation off that push/pop is
/// all it costs.
/// </remarks>
public sealed class LockMap
{
    /// <summary>Creates a pseudo-lock of class <paramref name="className"/>.</summary>
    public LockMap(string className)
    {
        ArgumentNullException.ThrowIfNull(className);
        ClassName = className;
    }

    /// <summary>The lock class name.</summary>
    public string ClassName { get; }

    /// <summary>Whether the calling thread is inside this map.</summary>
    public bool IsHeldByCurrentThread => HeldLocks.CurrentOrNull?.Contains(this, LockKind.Map) ?? false;

    /// <summary>lock_map_acquire: checked and recorded like a blocking acquire, but never waits.</summary>
    public void Acquire()
    {
        HeldLocks held = HeldLocks.Current;
        if (LockValidator.Enabled)
        {
            LockValidator.CheckAcquire(held, this, ClassName, 0, LockKind.Map);
        }

        held.Push(this, ClassName, 0, LockKind.Map);
    }

    /// <summary>lock_map_release: the calling thread must have acquired the map.</summary>
    public void Release()
    {
        if (!(HeldLocks.CurrentOrNull?.Remove(this, LockKind.Map) ?? false))
        {
            throw LockValidator.BadUnlock(LockKind.Map, ClassName, "it never acquired it");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => LockValidator.Describe(LockKind.Map, ClassName, 0);
}
