using System.Collections.Concurrent;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;

namespace Hmm.Runtime.Tests.Notifiers;

/// <summary>A call a whole-mm notifier received: callback name, range, event and blockable flag.</summary>
internal readonly record struct MmuCall(string Callback, ulong Start, ulong End, NotifyEvent Event, bool Blockable);

/// <summary>
/// A driver-like ops table recording every callback: start/end, release, alloc/free. Options make
/// a non-blockable start refuse with EAGAIN or a release put its own reference.
/// </summary>
internal class RecordingMmuNotifierOps : MmuNotifierOps
{
    public readonly ConcurrentQueue<MmuCall> Calls = new();
    public readonly ConcurrentQueue<MmuNotifier> Freed = new();
    public int Allocated;
    public Errno AllocResult = Errno.Ok;
    public bool PutInRelease;
    public Action<MmuNotifier>? OnRelease;

    public MmuCall[] Snapshot() => Calls.ToArray();

    public override void Release(MmuNotifier subscription, AddressSpace mm)
    {
        Calls.Enqueue(new MmuCall("release", 0, ulong.MaxValue, NotifyEvent.Release, true));
        OnRelease?.Invoke(subscription);
        if (PutInRelease) subscription.Put();
    }

    public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
    {
        Calls.Enqueue(new MmuCall("start", range.Start, range.End, range.Event, range.Blockable));
        return Errno.Ok;
    }

    public override void InvalidateRangeEnd(MmuNotifier subscription, in NotifierRange range)
        => Calls.Enqueue(new MmuCall("end", range.Start, range.End, range.Event, range.Blockable));

    public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
    {
        if (AllocResult != Errno.Ok)
        {
            subscription = null;
            return AllocResult;
        }
        Interlocked.Increment(ref Allocated);
        subscription = new MmuNotifier(this);
        return Errno.Ok;
    }

    public override void FreeNotifier(MmuNotifier subscription) => Freed.Enqueue(subscription);
}

/// <summary>An ops table whose start may fail (non-blockable → EAGAIN) and which therefore has no end, as the kernel requires.</summary>
internal sealed class RefusingMmuNotifierOps : MmuNotifierOps
{
    public int Starts;
    public bool Refuse = true;

    public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
    {
        Interlocked.Increment(ref Starts);
        return !range.Blockable && Refuse ? Errno.EAGAIN : Errno.Ok;
    }
}

/// <summary>Start may fail and an end is implemented too: the core rejects that (NTF-R03).</summary>
internal sealed class RefusingWithEndOps : MmuNotifierOps
{
    public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range) => range.Blockable ? Errno.Ok : Errno.EAGAIN;

    public override void InvalidateRangeEnd(MmuNotifier subscription, in NotifierRange range) { }
}

/// <summary>arch_invalidate_secondary_tlbs together with start/end: register refuses with EINVAL.</summary>
internal sealed class TlbAndStartOps : MmuNotifierOps
{
    public override void ArchInvalidateSecondaryTlbs(MmuNotifier subscription, AddressSpace mm, ulong start, ulong end) { }

    public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range) => Errno.Ok;
}

/// <summary>An IOMMU-style subscriber: only arch_invalidate_secondary_tlbs and the young bits.</summary>
internal sealed class SecondaryTlbOps : MmuNotifierOps
{
    public readonly ConcurrentQueue<(ulong Start, ulong End)> Flushes = new();
    public bool Young;

    public override void ArchInvalidateSecondaryTlbs(MmuNotifier subscription, AddressSpace mm, ulong start, ulong end) => Flushes.Enqueue((start, end));

    public override bool ClearFlushYoung(MmuNotifier subscription, AddressSpace mm, ulong start, ulong end)
    {
        bool was = Young;
        Young = false;
        return was;
    }

    public override bool TestYoung(MmuNotifier subscription, AddressSpace mm, ulong address) => Young;
}
