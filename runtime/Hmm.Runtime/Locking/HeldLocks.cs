namespace Hmm.Runtime.Locking;

/// <summary>How a held lock was taken; decides what "sleeping" and "unlock" mean for it.</summary>
internal enum LockKind : byte
{
    /// <summary>A <see cref="KernelMutex"/> (sleeping lock).</summary>
    Mutex,

    /// <summary>A <see cref="SpinLock"/> (atomic context while held).</summary>
    Spin,

    /// <summary>A <see cref="RwSemaphore"/> held for read.</summary>
    RwRead,

    /// <summary>A <see cref="RwSemaphore"/> held for write.</summary>
    RwWrite,

    /// <summary>A <see cref="LockMap"/> pseudo-lock.</summary>
    Map,
}

/// <summary>One entry of a thread's held-lock stack (lockdep's <c>struct held_lock</c>).</summary>
internal readonly struct HeldLock
{
    public HeldLock(object instance, string className, int subclass, LockKind kind, long sequence)
    {
        Instance = instance;
        ClassName = className;
        Subclass = subclass;
        Kind = kind;
        Sequence = sequence;
    }

    /// <summary>The primitive itself (identity decides which entry an unlock removes).</summary>
    public object Instance { get; }

    /// <summary>The lock class name (lockdep key).</summary>
    public string ClassName { get; }

    /// <summary>The nesting subclass the lock was taken with (0 unless nested).</summary>
    public int Subclass { get; }

    /// <summary>How it was taken.</summary>
    public LockKind Kind { get; }

    /// <summary>Per-thread acquisition number; lets <see cref="LockValidator.CheckReleasedSince"/> tell old locks from new ones.</summary>
    public long Sequence { get; }

    public HeldLock WithKind(LockKind kind) => new(Instance, ClassName, Subclass, kind, Sequence);

    /// <summary>"mutex 'dmirror.mutex'" — how reports name the lock.</summary>
    public string Describe() => LockValidator.Describe(Kind, ClassName, Subclass);
}

/// <summary>
/// The locks one thread holds right now, like lockdep's <c>current-&gt;held_locks</c>. Kept
/// for every acquire whether or not validation is on, so that <c>IsHeldByCurrentThread</c>
/// is exact for read-held semaphores too and switching validation on mid-run sees a
/// consistent picture. Grows by doubling, so after warm-up nothing here allocates.
/// </summary>
internal sealed class HeldLocks
{
    [ThreadStatic]
    private static HeldLocks? t_current;

    private HeldLock[] _items = new HeldLock[8];
    private string[] _nonBlockable = new string[4];
    private long _lastSequence;

    /// <summary>The calling thread's stack, created on first use.</summary>
    public static HeldLocks Current => t_current ??= new HeldLocks();

    /// <summary>The calling thread's stack, or null when it never took a lock.</summary>
    public static HeldLocks? CurrentOrNull => t_current;

    /// <summary>Forgets the calling thread's stack (a pooled exploration worker starting a new logical thread).</summary>
    public static void DiscardCurrent() => t_current = null;

    /// <summary>How many locks the thread holds.</summary>
    public int Count { get; private set; }

    /// <summary>How many spinlocks the thread holds (it may not sleep while this is non-zero).</summary>
    public int SpinDepth { get; private set; }

    /// <summary>How deep the thread is inside non-blockable sections.</summary>
    public int NonBlockableDepth { get; private set; }

    /// <summary>The sequence number given to the most recent acquisition.</summary>
    public long LastSequence => _lastSequence;

    public ref readonly HeldLock this[int index] => ref _items[index];

    public void Push(object instance, string className, int subclass, LockKind kind)
    {
        if (Count == _items.Length)
        {
            Array.Resize(ref _items, _items.Length * 2);
        }

        _items[Count++] = new HeldLock(instance, className, subclass, kind, ++_lastSequence);
        if (kind == LockKind.Spin)
        {
            SpinDepth++;
        }
    }

    /// <summary>Removes the most recent entry for <paramref name="instance"/> taken as <paramref name="kind"/>; false if there is none.</summary>
    public bool Remove(object instance, LockKind kind)
    {
        int i = IndexOf(instance, kind);
        if (i < 0)
        {
            return false;
        }

        // Kernel code may release locks in any order, so the entry can be in the middle.
        Array.Copy(_items, i + 1, _items, i, Count - i - 1);
        _items[--Count] = default;
        if (kind == LockKind.Spin)
        {
            SpinDepth--;
        }

        return true;
    }

    /// <summary>Changes how a held lock counts (downgrade_write turns a write hold into a read hold).</summary>
    public bool ChangeKind(object instance, LockKind from, LockKind to)
    {
        int i = IndexOf(instance, from);
        if (i < 0)
        {
            return false;
        }

        _items[i] = _items[i].WithKind(to);
        return true;
    }

    public bool Contains(object instance, LockKind kind) => IndexOf(instance, kind) >= 0;

    /// <summary>Whether the thread holds <paramref name="instance"/> in any way.</summary>
    public bool Contains(object instance)
    {
        for (int i = Count - 1; i >= 0; i--)
        {
            if (ReferenceEquals(_items[i].Instance, instance))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The most recently acquired spinlock, for the "sleeping in atomic context" report.</summary>
    public int IndexOfLastSpin()
    {
        for (int i = Count - 1; i >= 0; i--)
        {
            if (_items[i].Kind == LockKind.Spin)
            {
                return i;
            }
        }

        return -1;
    }

    public int PushNonBlockable(string context)
    {
        if (NonBlockableDepth == _nonBlockable.Length)
        {
            Array.Resize(ref _nonBlockable, _nonBlockable.Length * 2);
        }

        _nonBlockable[NonBlockableDepth++] = context;
        return NonBlockableDepth;
    }

    public void PopNonBlockable() => _nonBlockable[--NonBlockableDepth] = null!;

    /// <summary>The innermost non-blockable context's name.</summary>
    public string InnermostNonBlockable => _nonBlockable[NonBlockableDepth - 1];

    private int IndexOf(object instance, LockKind kind)
    {
        for (int i = Count - 1; i >= 0; i--)
        {
            if (ReferenceEquals(_items[i].Instance, instance) && _items[i].Kind == kind)
            {
                return i;
            }
        }

        return -1;
    }
}
