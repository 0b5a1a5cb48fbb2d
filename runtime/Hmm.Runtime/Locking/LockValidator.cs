using System.Text;

namespace Hmm.Runtime.Locking;

/// <summary>
/// Simulates lockdep (kernel/locking/lockdep.c) plus <c>might_sleep()</c>: a global
/// validator that every <see cref="KernelMutex"/>, <see cref="SpinLock"/>,
/// <see cref="RwSemaphore"/>, <see cref="LockMap"/> and <see cref="WaitQueue"/> reports to.
/// </summary>
/// <remarks>
/// <para>When <see cref="Enabled"/> is on it reports, as <see cref="KernelBugException"/>
/// with rule <c>LOCKDEP</c>:</para>
/// <list type="bullet">
/// <item>a blocking acquisition that closes a cycle in the lock-class dependency graph
/// ("possible circular locking dependency"), naming both classes and the acquisition sites
/// of every edge in the cycle — even if the opposite order ran long ago on another thread;</item>
/// <item>two locks of one class held at once without a nesting subclass, or the same lock
/// taken twice ("possible recursive locking");</item>
/// <item>a sleeping call while a spinlock is held or inside <see cref="EnterNonBlockable"/>
/// ("sleeping function called from invalid context");</item>
/// <item>a callback that returns holding a lock it took (<see cref="CheckReleasedSince"/>).</item>
/// </list>
/// <para>When it is off each of these costs one branch. Which locks each thread holds is
/// tracked either way, so ownership queries stay exact and bad unlocks are always caught.</para>
/// </remarks>
public static class LockValidator
{
    /// <summary>The rule name every lockdep report carries.</summary>
    public const string Rule = "LOCKDEP";

    /// <summary>The largest nesting subclass accepted (lockdep's MAX_LOCKDEP_SUBCLASSES − 1).</summary>
    public const int MaxSubclass = 7;

    private static readonly LockDependencyGraph s_graph = new();
    private static volatile bool s_enabled;

    /// <summary>
    /// Whether validation is on. Off by default; <c>Machine</c> sets it from
    /// <c>MachineOptions.LockValidation</c>, tests set it explicitly and restore it.
    /// </summary>
    public static bool Enabled
    {
        get => s_enabled;
        set => s_enabled = value;
    }

    /// <summary>How many locks (including lock maps) the calling thread holds (lockdep_depth). Always exact.</summary>
    public static int HeldLockCount => HeldLocks.CurrentOrNull?.Count ?? 0;

    /// <summary>
    /// might_sleep(): throws if the caller may not sleep here — it holds a spinlock or runs
    /// inside a non-blockable section (e.g. a non-blockable notifier callback).
    /// <paramref name="operation"/> names what was about to sleep, for the report.
    /// </summary>
    public static void MightSleep(string operation)
    {
        if (!s_enabled)
        {
            return;
        }

        HeldLocks? held = HeldLocks.CurrentOrNull;
        if (held is not null && (held.SpinDepth > 0 || held.NonBlockableDepth > 0))
        {
            throw SleepInInvalidContext(operation, held);
        }
    }

    /// <summary>
    /// Marks the calling thread as running a non-blockable section (a notifier callback for
    /// a range where <c>mmu_notifier_range_blockable()</c> is false) until the scope is
    /// disposed. Scopes nest and must be disposed in reverse order on the same thread.
    /// </summary>
    public static NonBlockableScope EnterNonBlockable(string context)
    {
        if (!s_enabled)
        {
            return default;
        }

        return new NonBlockableScope(HeldLocks.Current.PushNonBlockable(context));
    }

    /// <summary>Remembers which locks the calling thread holds now (before a callback).</summary>
    public static HeldLockMark Mark()
    {
        // Taken even when validation is off (two property reads) so that a mark taken just
        // before validation is switched on is still correct.
        HeldLocks? held = HeldLocks.CurrentOrNull;
        return held is null ? default : new HeldLockMark(held.LastSequence, held.Count);
    }

    /// <summary>
    /// Throws if the calling thread holds a lock it did not hold at <paramref name="mark"/>
    /// (a callback returned with a lock held), or released one it held then.
    /// <paramref name="callback"/> names the callback for the report.
    /// </summary>
    public static void CheckReleasedSince(HeldLockMark mark, string callback)
    {
        if (!s_enabled)
        {
            return;
        }

        HeldLocks? held = HeldLocks.CurrentOrNull;
        int count = held?.Count ?? 0;
        int older = 0;
        for (int i = 0; i < count; i++)
        {
            ref readonly HeldLock h = ref held![i];
            if (h.Sequence > mark.Sequence)
            {
                throw new KernelBugException(Rule,
                    $"lock held when returning from callback {callback}: it acquired {h.Describe()} and did not release it.");
            }

            older++;
        }

        if (older < mark.Depth)
        {
            throw new KernelBugException(Rule,
                $"bad unlock balance in callback {callback}: it released {mark.Depth - older} lock(s) its caller held.");
        }
    }

    /// <summary>Forgets every recorded dependency (tests). Held-lock stacks are not touched.</summary>
    public static void Reset() => s_graph.Clear();

    /// <summary>
    /// Declares a documented lock order, outermost first (lockdep priming, as the kernel primes
    /// dma_resv and fs_reclaim orders at boot): each class is recorded as taken before the next,
    /// so an acquisition in the opposite order is reported at once, even before the documented
    /// order ever ran. Throws if the opposite order is already recorded.
    /// </summary>
    public static void DeclareOrder(params string[] classes)
    {
        ArgumentNullException.ThrowIfNull(classes);
        for (int i = 0; i + 1 < classes.Length; i++)
        {
            s_graph.DeclareOrder(classes[i], classes[i + 1]);
        }
    }

    /// <summary>Whether a dependency <paramref name="from"/> → <paramref name="to"/> (subclass 0) has been recorded.</summary>
    public static bool HasDependency(string from, string to) => s_graph.HasDependency(from, to);

    /// <summary>Ordering and recursion check before a blocking acquire; call only when enabled.</summary>
    internal static void CheckAcquire(HeldLocks held, object instance, string className, int subclass, LockKind kind)
    {
        // Nothing held: no order to check and nothing to record.
        if (held.Count != 0)
        {
            s_graph.CheckAcquire(held, instance, className, subclass, kind);
        }
    }

    /// <summary>might_sleep() for a sleeping lock acquisition; builds the operation name only when reporting.</summary>
    internal static void MightSleep(LockKind kind, string className, int subclass)
    {
        HeldLocks? held = HeldLocks.CurrentOrNull;
        if (held is not null && (held.SpinDepth > 0 || held.NonBlockableDepth > 0))
        {
            throw SleepInInvalidContext(Operation(kind) + " of " + Describe(kind, className, subclass), held);
        }
    }

    internal static void ValidateSubclass(int subclass)
    {
        if ((uint)subclass > MaxSubclass)
        {
            throw new ArgumentOutOfRangeException(nameof(subclass), subclass, $"Nesting subclass must be 0..{MaxSubclass}.");
        }
    }

    /// <summary>Report for an unlock by a thread that does not hold the lock (lockdep "bad unlock balance").</summary>
    internal static KernelBugException BadUnlock(LockKind kind, string className, string holder) =>
        new(Rule, $"bad unlock balance detected: thread #{Environment.CurrentManagedThreadId} releases "
            + $"{Describe(kind, className, 0)} which it does not hold ({holder}).");

    /// <summary>Report for a thread about to block on a lock it already holds (validation off finds this on the slow path).</summary>
    internal static KernelBugException SelfDeadlock(LockKind kind, string className) =>
        new(Rule, $"possible recursive locking detected: thread #{Environment.CurrentManagedThreadId} is about to block "
            + $"acquiring {Describe(kind, className, 0)}, which it already holds — the very same lock, a self-deadlock.");

    internal static string DisplayClass(string className, int subclass) =>
        subclass == 0 ? className : className + "/" + subclass.ToString(System.Globalization.CultureInfo.InvariantCulture);

    internal static string Describe(LockKind kind, string className, int subclass)
    {
        string what = kind switch
        {
            LockKind.Mutex => "mutex",
            LockKind.Spin => "spinlock",
            LockKind.RwRead => "rw_semaphore (read)",
            LockKind.RwWrite => "rw_semaphore (write)",
            _ => "lock map",
        };
        return what + " '" + DisplayClass(className, subclass) + "'";
    }

    private static string Operation(LockKind kind) => kind switch
    {
        LockKind.Mutex => "mutex_lock",
        LockKind.RwRead => "down_read",
        LockKind.RwWrite => "down_write",
        LockKind.Spin => "spin_lock",
        _ => "lock_map_acquire",
    };

    private static KernelBugException SleepInInvalidContext(string operation, HeldLocks held)
    {
        var sb = new StringBuilder("sleeping function called from invalid context: ");
        sb.Append(operation);
        int spin = held.IndexOfLastSpin();
        if (spin >= 0)
        {
            sb.Append(" while holding ").Append(held[spin].Describe()).Append(" (atomic context)");
        }

        if (held.NonBlockableDepth > 0)
        {
            sb.Append(spin >= 0 ? " and" : "").Append(" inside non-blockable section '").Append(held.InnermostNonBlockable).Append('\'');
        }

        sb.Append(".\n  at:\n").Append(LockDependencyGraph.CaptureSite());
        return new KernelBugException(Rule, sb.ToString());
    }
}

/// <summary>
/// A non-blockable section returned by <see cref="LockValidator.EnterNonBlockable"/>
/// (the simulated counterpart of running a notifier callback with
/// <c>mmu_notifier_range_blockable()</c> false). A struct, so entering allocates nothing.
/// </summary>
public readonly struct NonBlockableScope : IDisposable
{
    // Depth this scope pushed the thread to; 0 = inert (validation was off at entry).
    private readonly int _depth;

    internal NonBlockableScope(int depth) => _depth = depth;

    /// <summary>Leaves the section. Disposing out of order, twice, or on another thread is reported.</summary>
    public void Dispose()
    {
        if (_depth == 0)
        {
            return;
        }

        HeldLocks? held = HeldLocks.CurrentOrNull;
        if (held is null || held.NonBlockableDepth != _depth)
        {
            throw new KernelBugException(LockValidator.Rule,
                "non-blockable section left out of order, twice, or on another thread than the one that entered it.");
        }

        held.PopNonBlockable();
    }
}

/// <summary>
/// The held-lock state of a thread at one moment (see <see cref="LockValidator.Mark"/>):
/// like saving <c>lockdep_depth(current)</c> before calling into a driver callback.
/// </summary>
public readonly struct HeldLockMark
{
    internal HeldLockMark(long sequence, int depth)
    {
        Sequence = sequence;
        Depth = depth;
    }

    /// <summary>How many locks the thread held when the mark was taken.</summary>
    public int Depth { get; }

    /// <summary>Acquisition number of the newest lock held at the mark; anything newer was taken after it.</summary>
    internal long Sequence { get; }
}
