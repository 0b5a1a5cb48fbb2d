using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using KernelSpinLock = Hmm.Runtime.Locking.SpinLock;

namespace Hmm.Runtime.Tests.Support;

/// <summary>One interval-notifier callback as a <see cref="NotifierRecorder"/> saw it.</summary>
/// <param name="Event">Why the range changed.</param>
/// <param name="Start">Range start (inclusive).</param>
/// <param name="End">Range end (exclusive).</param>
/// <param name="Blockable">Whether the callback was allowed to sleep.</param>
/// <param name="Owner">The owner cookie for Migrate/Exclusive events; null for every other event.</param>
public readonly record struct RecordedEvent(NotifyEvent Event, ulong Start, ulong End, bool Blockable, object? Owner);

/// <summary>
/// A test driver's <c>mmu_interval_notifier</c>: inserts an <see cref="IntervalNotifier"/> over a
/// range of an mm and records every invalidate callback (refused ones included) in order. It
/// behaves like a well-formed driver (HMM-R07): it calls <see cref="IntervalNotifier.SetSeq"/>
/// on every callback it accepts. Set <see cref="Refuse"/> to make it return false (the core
/// treats that as -EAGAIN for a non-blockable range and as HMM-R08 for a blockable one).
/// Thread-safe; usable from non-blockable context. Dispose removes the notifier.
/// </summary>
public sealed class NotifierRecorder : IIntervalNotifierOps, IDisposable
{
    /// <summary>Default length: the whole user space from 0 up to the last page boundary.</summary>
    public const ulong WholeSpace = ulong.MaxValue & ~0xFFFUL;

    private readonly KernelSpinLock _lock = new("test.NotifierRecorder");
    private readonly List<RecordedEvent> _events = new();
    private bool _disposed;

    private NotifierRecorder() => Notifier = new IntervalNotifier(this);

    /// <summary>The recorder's interval notifier.</summary>
    public IntervalNotifier Notifier { get; }

    /// <summary>When set and returning true for a range, the callback refuses it (returns false, no SetSeq).</summary>
    public Func<NotifierRange, bool>? Refuse { get; set; }

    /// <summary>Optional extra work run inside each callback before it returns (e.g. to block or to misbehave).</summary>
    public Action<NotifierRange>? OnInvalidate { get; set; }

    /// <summary>The last curSeq handed to a callback.</summary>
    public ulong LastSeq { get; private set; }

    /// <summary>A snapshot of the callbacks recorded so far, in call order.</summary>
    public IReadOnlyList<RecordedEvent> Events
    {
        get
        {
            _lock.Lock();
            try { return _events.ToArray(); }
            finally { _lock.Unlock(); }
        }
    }

    /// <summary>
    /// Inserts a recorder over [<paramref name="start"/>, start + <paramref name="length"/>) of
    /// <paramref name="mm"/>; throws if the insert fails. With the default length the recorder
    /// watches from <paramref name="start"/> up to <see cref="WholeSpace"/>.
    /// </summary>
    public static NotifierRecorder Attach(AddressSpace mm, ulong start = 0, ulong length = WholeSpace)
    {
        if (length == WholeSpace && start != 0 && start < WholeSpace) length = WholeSpace - start;
        var recorder = new NotifierRecorder();
        Errno err = recorder.Notifier.Insert(mm, start, length);
        if (err != Errno.Ok) throw new InvalidOperationException($"mmu_interval_notifier_insert failed: {err}");
        return recorder;
    }

    /// <summary>Forgets the recorded events.</summary>
    public void Clear()
    {
        _lock.Lock();
        try { _events.Clear(); }
        finally { _lock.Unlock(); }
    }

    /// <inheritdoc/>
    public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        object? owner = range.Event is NotifyEvent.Migrate or NotifyEvent.Exclusive ? range.Owner : null;
        _lock.Lock();
        try { _events.Add(new RecordedEvent(range.Event, range.Start, range.End, range.Blockable, owner)); }
        finally { _lock.Unlock(); }
        OnInvalidate?.Invoke(range);
        // A test double: tests make it refuse on purpose, blockable ranges included, to check how
        // the core handles a refusal (HMM-R08 is the driver's rule, provoked here deliberately).
#pragma warning disable HMM1014
        if (Refuse is { } refuse && refuse(range)) return false;
#pragma warning restore HMM1014
        LastSeq = curSeq;
        notifier.SetSeq(curSeq);
        return true;
    }

    /// <summary>Removes the notifier (mmu_interval_notifier_remove) unless already done.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (Notifier.IsInserted) Notifier.Remove();
    }
}
