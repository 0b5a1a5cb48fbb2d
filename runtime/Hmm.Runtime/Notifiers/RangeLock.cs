using Hmm.Runtime.Locking;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Notifiers;

/// <summary>
/// A driver-held lock on [<see cref="Start"/>, <see cref="End"/>) of an mm against CPU
/// page-table updates, modelled on the range lock of the 2016 HMM patch series (v13 era).
/// <para>
/// While it is held, a blockable invalidation overlapping it waits, before any interval
/// callback runs, until it is released (munmap, COW, migration… stall behind the device);
/// a non-blockable one fails at once (its start returns false, nothing is invalidated).
/// Acquiring it sleeps while an overlapping invalidation is in progress.
/// </para>
/// Range locks do not exclude each other: two overlapping ones may be held at once, since
/// each only keeps the CPU side from changing the range (like readers of one rwsem).
/// </summary>
public sealed class RangeLock : IDisposable
{
    private readonly MmuNotifierSubscriptions _subscriptions;
    private readonly IntervalNode _node;
    private int _held = 1;

    private RangeLock(MmuNotifierSubscriptions subscriptions, IntervalNode node)
    {
        _subscriptions = subscriptions;
        _node = node;
    }

    /// <summary>The locked address space.</summary>
    public AddressSpace Mm => _subscriptions.Mm;

    /// <summary>First locked address (inclusive).</summary>
    public ulong Start => _node.Start;

    /// <summary>End of the locked range (exclusive).</summary>
    public ulong End => _node.Last + 1;

    /// <summary>Whether the lock is still held.</summary>
    public bool IsHeld => Volatile.Read(ref _held) != 0;

    /// <summary>
    /// Locks [<paramref name="start"/>, <paramref name="end"/>) of <paramref name="mm"/>,
    /// sleeping while an overlapping invalidation is in progress. Never call it holding a lock
    /// an invalidate callback takes (same deadlock as HMM-R03).
    /// </summary>
    public static RangeLock Acquire(AddressSpace mm, ulong start, ulong end)
    {
        ArgumentNullException.ThrowIfNull(mm);
        if (end <= start) throw new ArgumentOutOfRangeException(nameof(end), "range lock needs start < end");
        LockValidator.MightSleep("hmm range lock");
        MmuNotifierSubscriptions subscriptions = MmuNotifierSubscriptions.GetOrInstall(mm);
        var node = new IntervalNode(IntervalNodeKind.RangeLock) { Start = start, Last = end - 1 };
        subscriptions.AcquireRangeLock(node);
        return new RangeLock(subscriptions, node);
    }

    /// <summary>Releases the lock, letting waiting invalidations proceed. Releasing twice is a bug.</summary>
    public void Release()
    {
        if (Interlocked.Exchange(ref _held, 0) == 0)
            throw new KernelBugException("LOCKDEP", $"range lock [0x{Start:x}, 0x{End:x}) released twice");
        _subscriptions.UnlinkGuard(_node);
    }

    /// <summary>Releases the lock if still held.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _held, 0) != 0) _subscriptions.UnlinkGuard(_node);
    }
}
