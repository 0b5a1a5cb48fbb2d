using System.Threading;

namespace Hmm.Runtime.Locking;

/// <summary>Simulates struct mutex: a sleeping lock. (Stub — replaced by the Locking work.)</summary>
public sealed class KernelMutex
{
    private readonly object _gate = new();
    private int _owner;

    /// <summary>Creates a mutex of lock class <paramref name="className"/>.</summary>
    public KernelMutex(string className) => ClassName = className;

    /// <summary>The lock class name (lockdep key).</summary>
    public string ClassName { get; }

    /// <summary>Whether any thread holds the mutex.</summary>
    public bool IsLocked => Volatile.Read(ref _owner) != 0;

    /// <summary>Whether the calling thread holds the mutex.</summary>
    public bool IsHeldByCurrentThread => Volatile.Read(ref _owner) == Environment.CurrentManagedThreadId;

    /// <summary>mutex_lock: may sleep.</summary>
    public void Lock() { Monitor.Enter(_gate); _owner = Environment.CurrentManagedThreadId; }

    /// <summary>mutex_trylock.</summary>
    public bool TryLock()
    {
        if (!Monitor.TryEnter(_gate)) return false;
        _owner = Environment.CurrentManagedThreadId;
        return true;
    }

    /// <summary>mutex_unlock.</summary>
    public void Unlock() { _owner = 0; Monitor.Exit(_gate); }
}
