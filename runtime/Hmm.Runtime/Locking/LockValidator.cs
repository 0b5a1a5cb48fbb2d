namespace Hmm.Runtime.Locking;

/// <summary>Simulates lockdep. (Stub — replaced by the Locking work.)</summary>
public static class LockValidator
{
    /// <summary>Whether validation is on.</summary>
    public static bool Enabled { get; set; }

    /// <summary>might_sleep(): throws if the caller may not sleep here.</summary>
    public static void MightSleep(string operation) { _ = operation; }
}
