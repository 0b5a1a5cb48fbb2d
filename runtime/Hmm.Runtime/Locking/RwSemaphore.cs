using System.Threading;

namespace Hmm.Runtime.Locking;

/// <summary>Simulates struct rw_semaphore (the mmap lock). (Stub — replaced by the Locking work.)</summary>
public sealed class RwSemaphore
{
    private readonly ReaderWriterLockSlim _rw = new(LockRecursionPolicy.SupportsRecursion);

    /// <summary>Creates a semaphore of lock class <paramref name="className"/>.</summary>
    public RwSemaphore(string className) => ClassName = className;

    /// <summary>The lock class name (lockdep key).</summary>
    public string ClassName { get; }

    /// <summary>Whether any thread holds it, for read or write (mmap_assert_locked).</summary>
    public bool IsLocked => _rw.CurrentReadCount > 0 || _rw.IsWriteLockHeld;

    /// <summary>Whether it is held for write (mmap_assert_write_locked).</summary>
    public bool IsWriteLocked => _rw.IsWriteLockHeld;

    /// <summary>Whether the calling thread holds it (read or write).</summary>
    public bool IsHeldByCurrentThread => _rw.IsReadLockHeld || _rw.IsWriteLockHeld;

    /// <summary>down_read.</summary>
    public void ReadLock() => _rw.EnterReadLock();

    /// <summary>down_read_trylock.</summary>
    public bool TryReadLock() => _rw.TryEnterReadLock(0);

    /// <summary>up_read.</summary>
    public void ReadUnlock() => _rw.ExitReadLock();

    /// <summary>down_write.</summary>
    public void WriteLock() => _rw.EnterWriteLock();

    /// <summary>down_write_trylock.</summary>
    public bool TryWriteLock() => _rw.TryEnterWriteLock(0);

    /// <summary>up_write.</summary>
    public void WriteUnlock() => _rw.ExitWriteLock();
}
