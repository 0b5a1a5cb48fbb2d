using Hmm.Dsl;
using Hmm.Runtime.Scheduling;

namespace Hmm.Runtime.Locking;

/// <summary>
/// Simulates <c>struct rw_semaphore</c>, used as the mmap lock (<c>mm-&gt;mmap_lock</c>):
/// many readers or one writer, sleeping, non-recursive.
/// </summary>
/// <remarks>
/// <para><b>Writer-preferring</b>, like the kernel rwsem: once a writer is waiting, new
/// readers — including <see cref="TryReadLock"/> — wait behind it, so a stream of
/// readers cannot starve <c>mmap_write_lock</c>. The flip side is the kernel's: a thread
/// that takes the read lock twice deadlocks if a writer arrives in between, which is why
/// recursive read locking is reported (always with validation on; with it off, when the
/// thread is about to block on itself).</para>
/// <para>Uncontended acquire/release is one compare-exchange plus a push/pop on the
/// thread's held-lock stack, with no allocation. Contended threads sleep on a private
/// monitor. Read holders are tracked per thread, so <see cref="IsReadHeldByCurrentThread"/>
/// is exact and an up_read by a thread that holds no read lock is reported.</para>
/// </remarks>
public sealed class RwSemaphore
{
    private const int WriterBit = 1 << 30;
    private const int SpinIterations = 20;

    private readonly object _gate = new();
    private int _state;           // WriterBit, or the number of readers
    private int _writerOwner;     // managed thread id of the writer, 0 if none
    private int _waitingWriters;  // writers in WriteLock's slow path; blocks new readers
    private int _sleepers;        // threads inside the monitor

    /// <summary>Creates a semaphore of lock class <paramref name="className"/>.</summary>
    public RwSemaphore(string className)
    {
        ArgumentNullException.ThrowIfNull(className);
        ClassName = className;
    }

    /// <summary>The lock class name (lockdep key).</summary>
    public string ClassName { get; }

    /// <summary>Whether any thread holds it, for read or write (mmap_assert_locked).</summary>
    public bool IsLocked => Volatile.Read(ref _state) != 0;

    /// <summary>Whether it is held for write (mmap_assert_write_locked).</summary>
    public bool IsWriteLocked => (Volatile.Read(ref _state) & WriterBit) != 0;

    /// <summary>Whether the calling thread holds it, for read or write.</summary>
    public bool IsHeldByCurrentThread => IsWriteHeldByCurrentThread || IsReadHeldByCurrentThread;

    /// <summary>Whether the calling thread holds it for read.</summary>
    public bool IsReadHeldByCurrentThread => HeldLocks.CurrentOrNull?.Contains(this, LockKind.RwRead) ?? false;

    /// <summary>Whether the calling thread holds it for write.</summary>
    public bool IsWriteHeldByCurrentThread => Volatile.Read(ref _writerOwner) == Environment.CurrentManagedThreadId;

    /// <summary>Writers currently waiting (tests observe writer preference through it).</summary>
    internal int WaitingWriters => Volatile.Read(ref _waitingWriters);

    /// <summary>Threads currently asleep or about to sleep on this semaphore (tests).</summary>
    internal int Sleepers => Volatile.Read(ref _sleepers);

    /// <summary>down_read (mmap_read_lock): may sleep.</summary>
    [MayBlock]
    [AcquiresShared("this")]
    public void ReadLock() => ReadLockCore(0);

    /// <summary>down_read_nested: read lock of a second semaphore of the same class (subclass 1..7).</summary>
    [MayBlock]
    [AcquiresShared("this")]
    public void ReadLockNested(int subclass)
    {
        LockValidator.ValidateSubclass(subclass);
        ReadLockCore(subclass);
    }

    /// <summary>down_read_trylock: fails if a writer holds it or is waiting; records no dependency.</summary>
    [TryAcquires("this", Shared = true)]
    public bool TryReadLock()
    {
        SchedulePoints.Reach(SchedulePointKind.Acquire, this);
        if (!TryAcquireRead())
        {
            return false;
        }

        HeldLocks.Current.Push(this, ClassName, 0, LockKind.RwRead);
        return true;
    }

    /// <summary>up_read: the calling thread must hold a read lock.</summary>
    [Releases("this")]
    public void ReadUnlock()
    {
        if (!(HeldLocks.CurrentOrNull?.Remove(this, LockKind.RwRead) ?? false))
        {
            throw LockValidator.BadUnlock(LockKind.RwRead, ClassName,
                IsWriteHeldByCurrentThread ? "it holds it for write" : "it holds no read lock on it");
        }

        if (Interlocked.Decrement(ref _state) == 0)
        {
            WakeSleepers();
        }
    }

    /// <summary>down_write (mmap_write_lock): may sleep.</summary>
    [MayBlock]
    [Acquires("this")]
    public void WriteLock() => WriteLockCore(0);

    /// <summary>
    /// down_write_nested (mmap_write_lock_nested): write lock of a second semaphore of the
    /// same class, e.g. fork holding the parent's mmap lock while taking the child's with
    /// subclass 1 (SINGLE_DEPTH_NESTING).
    /// </summary>
    [MayBlock]
    [Acquires("this")]
    public void WriteLockNested(int subclass)
    {
        LockValidator.ValidateSubclass(subclass);
        WriteLockCore(subclass);
    }

    /// <summary>down_write_trylock: records no dependency.</summary>
    [TryAcquires("this")]
    public bool TryWriteLock()
    {
        SchedulePoints.Reach(SchedulePointKind.Acquire, this);
        if (Interlocked.CompareExchange(ref _state, WriterBit, 0) != 0)
        {
            return false;
        }

        Volatile.Write(ref _writerOwner, Environment.CurrentManagedThreadId);
        HeldLocks.Current.Push(this, ClassName, 0, LockKind.RwWrite);
        return true;
    }

    /// <summary>up_write: only the writer may call it.</summary>
    [Releases("this")]
    public void WriteUnlock()
    {
        EnsureWriter("up_write");
        HeldLocks.Current.Remove(this, LockKind.RwWrite);
        Volatile.Write(ref _writerOwner, 0);

        // Readers never touch _state while the writer bit is set, so it is exactly WriterBit.
        Interlocked.Exchange(ref _state, 0);
        WakeSleepers();
    }

    /// <summary>
    /// downgrade_write (mmap_write_downgrade): atomically turns the caller's write lock into
    /// a read lock, so no other writer can get in between; waiting readers may then enter
    /// (unless a writer is waiting — writer preference still applies).
    /// </summary>
    [Releases("this")]
    [AcquiresShared("this")]
    public void DowngradeWrite()
    {
        EnsureWriter("downgrade_write");
        HeldLocks.Current.ChangeKind(this, LockKind.RwWrite, LockKind.RwRead);
        Volatile.Write(ref _writerOwner, 0);
        Interlocked.Exchange(ref _state, 1);
        WakeSleepers();
    }

    /// <inheritdoc/>
    public override string ToString() => "rw_semaphore '" + ClassName + "'";

    private void ReadLockCore(int subclass)
    {
        SchedulePoints.Reach(SchedulePointKind.Acquire, this);
        HeldLocks held = HeldLocks.Current;
        if (LockValidator.Enabled)
        {
            LockValidator.MightSleep(LockKind.RwRead, ClassName, subclass);
            LockValidator.CheckAcquire(held, this, ClassName, subclass, LockKind.RwRead);
        }

        if (!TryAcquireRead())
        {
            ReadSlow(held);
        }

        held.Push(this, ClassName, subclass, LockKind.RwRead);
    }

    private void WriteLockCore(int subclass)
    {
        SchedulePoints.Reach(SchedulePointKind.Acquire, this);
        HeldLocks held = HeldLocks.Current;
        if (LockValidator.Enabled)
        {
            LockValidator.MightSleep(LockKind.RwWrite, ClassName, subclass);
            LockValidator.CheckAcquire(held, this, ClassName, subclass, LockKind.RwWrite);
        }

        if (Interlocked.CompareExchange(ref _state, WriterBit, 0) != 0)
        {
            WriteSlow(held);
        }

        Volatile.Write(ref _writerOwner, Environment.CurrentManagedThreadId);
        held.Push(this, ClassName, subclass, LockKind.RwWrite);
    }

    private bool TryAcquireRead()
    {
        while (true)
        {
            int s = Volatile.Read(ref _state);
            if ((s & WriterBit) != 0 || Volatile.Read(ref _waitingWriters) != 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _state, s + 1, s) == s)
            {
                return true;
            }
        }
    }

    private void ReadSlow(HeldLocks held)
    {
        // About to block: if the blocker is ourselves (we are the writer, or we hold a read
        // lock and a writer queued behind it), we would never wake up.
        if (held.Contains(this))
        {
            throw LockValidator.SelfDeadlock(LockKind.RwRead, ClassName);
        }

        if (SchedulePoints.Hook is { } hook)
        {
            while (!TryAcquireRead()) hook.Block(this);
            return;
        }

        var spin = new SpinWait();
        for (int i = 0; i < SpinIterations; i++)
        {
            spin.SpinOnce(sleep1Threshold: -1);
            if (TryAcquireRead())
            {
                return;
            }
        }

        lock (_gate)
        {
            Interlocked.Increment(ref _sleepers);
            try
            {
                while (!TryAcquireRead())
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

    private void WriteSlow(HeldLocks held)
    {
        if (held.Contains(this))
        {
            throw LockValidator.SelfDeadlock(LockKind.RwWrite, ClassName);
        }

        // Announce ourselves first: from here on, new readers queue behind us.
        Interlocked.Increment(ref _waitingWriters);
        try
        {
            if (SchedulePoints.Hook is { } hook)
            {
                while (Interlocked.CompareExchange(ref _state, WriterBit, 0) != 0) hook.Block(this);
                return;
            }

            var spin = new SpinWait();
            for (int i = 0; i < SpinIterations; i++)
            {
                spin.SpinOnce(sleep1Threshold: -1);
                if (Volatile.Read(ref _state) == 0 && Interlocked.CompareExchange(ref _state, WriterBit, 0) == 0)
                {
                    return;
                }
            }

            lock (_gate)
            {
                Interlocked.Increment(ref _sleepers);
                try
                {
                    while (Interlocked.CompareExchange(ref _state, WriterBit, 0) != 0)
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
        finally
        {
            // Readers blocked only by our announcement must re-check. When we got the lock
            // they will still see the writer bit and go back to sleep until WriteUnlock.
            if (Interlocked.Decrement(ref _waitingWriters) == 0)
            {
                WakeSleepers();
            }
        }
    }

    private void EnsureWriter(string operation)
    {
        int owner = Volatile.Read(ref _writerOwner);
        if (owner != Environment.CurrentManagedThreadId)
        {
            throw LockValidator.BadUnlock(LockKind.RwWrite, ClassName,
                operation + ": " + (owner == 0 ? "it is not write-locked" : $"writer is thread #{owner}"));
        }
    }

    private void WakeSleepers()
    {
        // Callers changed _state/_waitingWriters with a full fence before this read; a
        // sleeper increments _sleepers (full fence) before re-checking. One of the two sees
        // the other, so no wake-up is missed.
        if (Volatile.Read(ref _sleepers) != 0)
        {
            lock (_gate)
            {
                Monitor.PulseAll(_gate);
            }
        }

        SchedulePoints.Released(this);
    }
}
