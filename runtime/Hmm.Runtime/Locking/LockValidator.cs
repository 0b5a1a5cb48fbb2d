namespace Hmm.Runtime.Locking;

/// <summary>Simulates lockdep. (Stub — replaced by the Locking work.)</summary>
public static class LockValidator
{
    /// <summary>Whether validation is on.</summary>
    public static bool Enabled { get; set; }

    /// <summary>might_sleep(): throws if the caller may not sleep here (spinlock held, non-blockable notifier).</summary>
    public static void MightSleep(string operation) { _ = operation; }

    /// <summary>Marks the calling thread as running a non-blockable section (e.g. a non-blockable notifier callback) until disposed.</summary>
    public static NonBlockableScope EnterNonBlockable(string context) { _ = context; return default; }

    /// <summary>Remembers which locks the calling thread holds now (before a callback).</summary>
    public static HeldLockMark Mark() => default;

    /// <summary>Throws if the calling thread holds a lock it did not hold at <paramref name="mark"/> (a callback returned with a lock held).</summary>
    public static void CheckReleasedSince(HeldLockMark mark, string callback) { _ = mark; _ = callback; }

    /// <summary>Forgets every recorded dependency (tests).</summary>
    public static void Reset() { }
}

/// <summary>Scope returned by <see cref="LockValidator.EnterNonBlockable"/>.</summary>
public readonly struct NonBlockableScope : IDisposable
{
    /// <inheritdoc/>
    public void Dispose() { }
}

/// <summary>The held-lock depth of a thread at one moment (see <see cref="LockValidator.Mark"/>).</summary>
public readonly struct HeldLockMark
{
}
