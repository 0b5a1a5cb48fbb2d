using System.Threading;

namespace Hmm.Runtime.Locking;

/// <summary>Simulates spinlock_t: a non-sleeping lock. (Stub — replaced by the Locking work.)</summary>
public sealed class SpinLock
{
    private readonly object _gate = new();
    private int _owner;

    /// <summary>Creates a spinlock of lock class <paramref name="className"/>.</summary>
    public SpinLock(string className) => ClassName = className;

    /// <summary>The lock class name (lockdep key).</summary>
    public string ClassName { get; }

    /// <summary>Whether any thread holds the lock.</summary>
    public bool IsLocked => Volatile.Read(ref _owner) != 0;

    /// <summary>Whether the calling thread holds the lock.</summary>
    public bool IsHeldByCurrentThread => Volatile.Read(ref _owner) == Environment.CurrentManagedThreadId;

    /// <summary>spin_lock.</summary>
    public void Lock() { Monitor.Enter(_gate); _owner = Environment.CurrentManagedThreadId; }

    /// <summary>spin_trylock.</summary>
    public bool TryLock()
    {
        if (!Monitor.TryEnter(_gate)) return false;
        _owner = Environment.CurrentManagedThreadId;
        return true;
    }

    /// <summary>spin_unlock.</summary>
    public void Unlock() { _owner = 0; Monitor.Exit(_gate); }
}
