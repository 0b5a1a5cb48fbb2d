namespace Hmm.Runtime.Locking;

/// <summary>
/// Simulates a lockdep map (<c>struct lockdep_map</c> used with lock_map_acquire): a pseudo-lock
/// that takes part in ordering checks without excluding anyone, e.g. the kernel's
/// "invalidate_range_start" map that read_begin and notifier callbacks are annotated with.
/// (Stub — replaced by the Locking work.)
/// </summary>
public sealed class LockMap
{
    /// <summary>Creates a pseudo-lock of class <paramref name="className"/>.</summary>
    public LockMap(string className) => ClassName = className;

    /// <summary>The lock class name.</summary>
    public string ClassName { get; }

    /// <summary>lock_map_acquire.</summary>
    public void Acquire() { }

    /// <summary>lock_map_release.</summary>
    public void Release() { }
}
