using Hmm.Runtime.Locking;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Notifiers;

/// <summary>
/// A "was this range invalidated?" flag over [<see cref="Start"/>, <see cref="End"/>) of an mm,
/// modelled on the range monitor of the 2016 HMM patch series (v13 era) and the later
/// <c>hmm_range.valid</c>. <see cref="Valid"/> is set at registration and by
/// <see cref="Revalidate"/> (both wait until no overlapping invalidation is in progress) and
/// cleared by the start of any overlapping invalidation (and by mm release). It never blocks
/// the CPU side. Reading true is only conclusive under the driver lock that its invalidate
/// callback takes, like <see cref="IntervalNotifier.ReadRetry"/>.
/// </summary>
public sealed class RangeMonitor : IDisposable
{
    private readonly MmuNotifierSubscriptions _subscriptions;
    private readonly IntervalNode _node;
    private int _registered = 1;

    private RangeMonitor(MmuNotifierSubscriptions subscriptions, IntervalNode node)
    {
        _subscriptions = subscriptions;
        _node = node;
    }

    /// <summary>The monitored address space.</summary>
    public AddressSpace Mm => _subscriptions.Mm;

    /// <summary>First monitored address (inclusive).</summary>
    public ulong Start => _node.Start;

    /// <summary>End of the monitored range (exclusive).</summary>
    public ulong End => _node.Last + 1;

    /// <summary>False once an overlapping invalidation started since registration / the last <see cref="Revalidate"/>.</summary>
    public bool Valid => Volatile.Read(ref _node.Valid) != 0;

    /// <summary>Starts monitoring [<paramref name="start"/>, <paramref name="end"/>) of <paramref name="mm"/>; may sleep.</summary>
    public static RangeMonitor Register(AddressSpace mm, ulong start, ulong end)
    {
        ArgumentNullException.ThrowIfNull(mm);
        if (end <= start) throw new ArgumentOutOfRangeException(nameof(end), "range monitor needs start < end");
        LockValidator.MightSleep("hmm range monitor register");
        MmuNotifierSubscriptions subscriptions = MmuNotifierSubscriptions.GetOrInstall(mm);
        var node = new IntervalNode(IntervalNodeKind.Monitor) { Start = start, Last = end - 1 };
        subscriptions.ValidateMonitor(node, link: true);
        return new RangeMonitor(subscriptions, node);
    }

    /// <summary>Sets <see cref="Valid"/> again before a new snapshot, once no overlapping invalidation is in progress; may sleep.</summary>
    public void Revalidate()
    {
        if (Volatile.Read(ref _registered) == 0) throw new ObjectDisposedException(nameof(RangeMonitor));
        LockValidator.MightSleep("hmm range monitor revalidate");
        _subscriptions.ValidateMonitor(_node, link: false);
    }

    /// <summary>Stops monitoring.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _registered, 0) != 0) _subscriptions.UnlinkGuard(_node);
    }
}
