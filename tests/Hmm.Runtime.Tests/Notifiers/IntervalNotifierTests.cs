using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Notifiers;

/// <summary>Interval notifier registration, the seq state machine and dispatch (reference/kernel-hmm.md A.7, B.1–B.3).</summary>
[TestFixture]
public sealed class IntervalNotifierTests
{
    private const ulong Page = 0x1000;

    private Machine _machine = null!;
    private AddressSpace _mm = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine();
        _mm = _machine.CreateProcess("p").Mm;
    }

    [TearDown]
    public void TearDown() => _machine.Dispose();

    private MmuNotifierSubscriptions Subs => (MmuNotifierSubscriptions)_mm.NotifierHook!;

    private NotifierRange Range(ulong start, ulong end, bool blockable = true, NotifyEvent ev = NotifyEvent.Clear)
        => new(_mm, start, end, ev, blockable);

    private bool Start(ulong start, ulong end, bool blockable = true) => _mm.NotifierHook!.InvalidateRangeStart(Range(start, end, blockable));

    private void End(ulong start, ulong end, bool blockable = true) => _mm.NotifierHook!.InvalidateRangeEnd(Range(start, end, blockable));

    private void AssertIdle()
    {
        Assert.That(Subs.ActiveInvalidateRanges, Is.Zero);
        Assert.That(Subs.Seq % 2, Is.Zero, "seq must be even when idle");
        Subs.CheckInvariants();
        _machine.CheckInvariants();
    }

    // B.1: insert watches [start, start+length); remove detaches; callbacks only while inserted.
    [Test]
    public void InsertThenRemove_CallbacksOnlyWhileInserted()
    {
        using var rec = NotifierRecorder.Attach(_mm, 0x10000, 4 * Page);
        Assert.Multiple(() =>
        {
            Assert.That(rec.Notifier.IsInserted, Is.True);
            Assert.That(rec.Notifier.Mm, Is.SameAs(_mm));
            Assert.That(rec.Notifier.Start, Is.EqualTo(0x10000UL));
            Assert.That(rec.Notifier.Last, Is.EqualTo(0x13FFFUL));
            Assert.That(rec.Notifier.End, Is.EqualTo(0x14000UL));
        });
        Assert.That(Start(0x13000, 0x15000), Is.True);
        End(0x13000, 0x15000);
        Assert.That(rec.Events, Is.EqualTo(new[] { new RecordedEvent(NotifyEvent.Clear, 0x13000, 0x15000, true, null) }));

        rec.Notifier.Remove();
        Assert.That(rec.Notifier.IsInserted, Is.False);
        rec.Clear();
        Start(0x10000, 0x14000);
        End(0x10000, 0x14000);
        Assert.That(rec.Events, Is.Empty);
        AssertIdle();
    }

    // B.1: length 0 or start+length-1 overflow → -EOVERFLOW, nothing inserted.
    [TestCase(0x1000UL, 0UL)]
    [TestCase(ulong.MaxValue, 2UL)]
    [TestCase(0x2000UL, ulong.MaxValue)]
    public void Insert_EmptyOrWrappingRange_IsEOverflowAndLeavesNotifierReusable(ulong start, ulong length)
    {
        var rec = NotifierRecorder.Attach(_mm, 0, Page); // installs the subscription
        var other = new IntervalNotifier(rec);
        Assert.That(other.Insert(_mm, start, length), Is.EqualTo(Errno.EOVERFLOW));
        Assert.That(other.IsInserted, Is.False);
        Assert.That(Subs.IntervalCount, Is.EqualTo(1));
        Assert.That(other.Insert(_mm, 0x5000, Page), Is.EqualTo(Errno.Ok));
        Assert.That(Subs.IntervalCount, Is.EqualTo(2));
        other.Remove();
        rec.Dispose();
        AssertIdle();
    }

    // B.1: the top address is insertable (start + length - 1 == ULONG_MAX does not overflow).
    [Test]
    public void Insert_UpToTopAddress_IsAccepted()
    {
        var n = new IntervalNotifier(NoopOps.Instance);
        Assert.That(n.Insert(_mm, 1, ulong.MaxValue), Is.EqualTo(Errno.Ok));
        Assert.That(n.Last, Is.EqualTo(ulong.MaxValue));
        n.Remove();
    }

    // B.1 / HMM-R11: mm_users <= 0 → -EINVAL.
    [Test]
    public void Insert_OnMmWithoutUsers_IsEInval()
    {
        _mm.Put();
        Assert.That(_mm.Users, Is.Zero);
        var n = new IntervalNotifier(NoopOps.Instance);
        Assert.That(n.Insert(_mm, 0, Page), Is.EqualTo(Errno.EINVAL));
        Assert.That(n.IsInserted, Is.False);
    }

    // HMM-R11: insert takes mmap_lock itself; insert_locked needs it held for write.
    [Test]
    public void Insert_MmapLockRules_AreHmmR11()
    {
        var n = new IntervalNotifier(NoopOps.Instance);
        _mm.MmapLock.ReadLock();
        try
        {
            var e = Assert.Throws<KernelBugException>(() => n.Insert(_mm, 0, Page));
            Assert.That(e!.Rule, Is.EqualTo("HMM-R11"));
            e = Assert.Throws<KernelBugException>(() => n.InsertLocked(_mm, 0, Page));
            Assert.That(e!.Rule, Is.EqualTo("HMM-R11"));
        }
        finally
        {
            _mm.MmapLock.ReadUnlock();
        }
        Assert.That(Assert.Throws<KernelBugException>(() => n.InsertLocked(_mm, 0, Page))!.Rule, Is.EqualTo("HMM-R11"));

        _mm.MmapLock.WriteLock();
        try
        {
            Assert.That(n.InsertLocked(_mm, 0, Page), Is.EqualTo(Errno.Ok));
        }
        finally
        {
            _mm.MmapLock.WriteUnlock();
        }
        Assert.That(n.IsInserted, Is.True);
        n.Remove();
        AssertIdle();
    }

    // HMM-R12: insert twice / remove without insert / remove twice.
    [Test]
    public void UnpairedInsertOrRemove_IsHmmR12()
    {
        var n = new IntervalNotifier(NoopOps.Instance);
        Assert.That(Assert.Throws<KernelBugException>(n.Remove)!.Rule, Is.EqualTo("HMM-R12"));
        Assert.That(n.Insert(_mm, 0, Page), Is.EqualTo(Errno.Ok));
        Assert.That(Assert.Throws<KernelBugException>(() => n.Insert(_mm, 0, Page))!.Rule, Is.EqualTo("HMM-R12"));
        n.Remove();
        Assert.That(Assert.Throws<KernelBugException>(n.Remove)!.Rule, Is.EqualTo("HMM-R12"));
        Assert.That(n.Insert(_mm, Page, Page), Is.EqualTo(Errno.Ok), "a removed notifier may be inserted again");
        n.Remove();
    }

    // A.7: seq starts at 2 (even); odd during a wave hitting an interval; even after.
    [Test]
    public void Seq_OddOnlyDuringWaveHittingAnInterval()
    {
        using var rec = NotifierRecorder.Attach(_mm, 0x10000, Page);
        Assert.That(Subs.Seq, Is.EqualTo(2UL));
        Assert.That(rec.Notifier.InvalidateSeq, Is.EqualTo(1UL), "inserted while idle: mm seq - 1");

        Start(0x10000, 0x11000);
        Assert.That(Subs.Seq, Is.EqualTo(3UL));
        Assert.That(rec.LastSeq, Is.EqualTo(3UL), "cur_seq handed to the callback is the odd seq");
        Assert.That(Subs.ActiveInvalidateRanges, Is.EqualTo(1));
        End(0x10000, 0x11000);
        Assert.That(Subs.Seq, Is.EqualTo(4UL));
        AssertIdle();
    }

    // A.7: a start hitting no interval is "partially excluded": seq stays even.
    [Test]
    public void Seq_WaveHittingNoInterval_StaysEven()
    {
        using var rec = NotifierRecorder.Attach(_mm, 0x10000, Page);
        Start(0x20000, 0x30000);
        Assert.That(Subs.Seq, Is.EqualTo(2UL));
        Assert.That(Subs.ActiveInvalidateRanges, Is.EqualTo(1));
        End(0x20000, 0x30000);
        Assert.That(Subs.Seq, Is.EqualTo(2UL));
        Assert.That(rec.Events, Is.Empty);
        AssertIdle();
    }

    // A.7 / H.5: the odd state persists until ALL concurrent invalidations end, even unrelated ones.
    [Test]
    public void Seq_StaysOddUntilEveryConcurrentInvalidationEnds()
    {
        using var rec = NotifierRecorder.Attach(_mm, 0x10000, Page);
        Start(0x10000, 0x11000);          // hits
        Start(0x90000, 0xA0000);          // unrelated
        End(0x10000, 0x11000);
        Assert.That(Subs.Seq, Is.EqualTo(3UL), "still odd: an unrelated invalidation is active");
        var reader = TestThread.Start(() => rec.Notifier.ReadBegin());
        reader.AssertBlocked();
        End(0x90000, 0xA0000);
        reader.AssertCompletes();
        Assert.That(Subs.Seq, Is.EqualTo(4UL));
        AssertIdle();
    }

    // B.2: read_begin sleeps while its interval was invalidated in the current wave, returns after end.
    [Test]
    public void ReadBegin_BlocksWhileOwnIntervalInvalidated_ReturnsAfterEnd()
    {
        using var rec = NotifierRecorder.Attach(_mm, 0x10000, Page);
        using var untouched = NotifierRecorder.Attach(_mm, 0x80000, Page);
        Start(0x10000, 0x11000);
        ulong seen = 0;
        var reader = TestThread.Start(() => seen = rec.Notifier.ReadBegin());
        reader.AssertBlocked();

        // H.5: an interval whose callback did not run in this wave does not wait.
        var other = TestThread.Start(() => untouched.Notifier.ReadBegin());
        other.AssertCompletes();

        End(0x10000, 0x11000);
        reader.AssertCompletes();
        Assert.That(seen, Is.EqualTo(3UL));
        Assert.That(rec.Notifier.ReadRetry(seen), Is.False, "no invalidation after the wave");
        AssertIdle();
    }

    // B.2: a reader that began before the callback ran sees a collision; one that began after does not.
    [Test]
    public void ReadRetry_TrueOnlyForReaderThatBeganBeforeTheCallback()
    {
        using var rec = NotifierRecorder.Attach(_mm, 0x10000, Page);
        ulong early = rec.Notifier.ReadBegin();
        Assert.That(rec.Notifier.ReadRetry(early), Is.False);
        Assert.That(rec.Notifier.CheckRetry(early), Is.False);

        Start(0x10000, 0x11000);
        Assert.That(rec.Notifier.CheckRetry(early), Is.True, "check_retry true is reliable");
        End(0x10000, 0x11000);
        Assert.That(rec.Notifier.ReadRetry(early), Is.True);

        ulong late = rec.Notifier.ReadBegin();
        Assert.That(rec.Notifier.ReadRetry(late), Is.False);
        Assert.That(rec.Notifier.CheckRetry(late), Is.False);

        // An invalidation of an unrelated range does not collide.
        Start(0x50000, 0x51000);
        End(0x50000, 0x51000);
        Assert.That(rec.Notifier.ReadRetry(late), Is.False);
        AssertIdle();
    }

    // A.7 / B.1: insert while fully excluded is deferred: no callback this wave, read_begin waits.
    [Test]
    public void Insert_DuringFullyExcludedWave_IsDeferred()
    {
        using var a = NotifierRecorder.Attach(_mm, 0x10000, Page);
        Start(0x10000, 0x11000);                  // seq odd
        var b = NotifierRecorder.Attach(_mm, 0x10000, 0x10000);
        Assert.That(b.Notifier.IsInserted, Is.True);
        Assert.That(Subs.IntervalCount, Is.EqualTo(1), "not in the tree yet");
        Assert.That(b.Notifier.InvalidateSeq, Is.EqualTo(Subs.Seq));

        Start(0x18000, 0x19000);                  // concurrent start over b only
        Assert.That(b.Events, Is.Empty, "deferred interval gets no callback in this wave");
        var reader = TestThread.Start(() => b.Notifier.ReadBegin());
        reader.AssertBlocked();

        End(0x18000, 0x19000);
        End(0x10000, 0x11000);
        reader.AssertCompletes();
        Assert.That(Subs.IntervalCount, Is.EqualTo(2));

        Start(0x18000, 0x19000);
        End(0x18000, 0x19000);
        Assert.That(b.Events, Has.Count.EqualTo(1));
        b.Dispose();
        AssertIdle();
    }

    // A.7: insert while only partially excluded forces seq odd and inserts at once.
    [Test]
    public void Insert_DuringPartiallyExcludedWave_ForcesOdd()
    {
        using var a = NotifierRecorder.Attach(_mm, 0x10000, Page);
        Start(0x50000, 0x60000);
        Assert.That(Subs.Seq, Is.EqualTo(2UL));
        var b = NotifierRecorder.Attach(_mm, 0x50000, Page);
        Assert.That(Subs.Seq, Is.EqualTo(3UL));
        Assert.That(Subs.IntervalCount, Is.EqualTo(2), "inserted immediately");
        var reader = TestThread.Start(() => b.Notifier.ReadBegin());
        reader.AssertBlocked();
        End(0x50000, 0x60000);
        reader.AssertCompletes();
        Assert.That(Subs.Seq, Is.EqualTo(4UL));
        b.Dispose();
        AssertIdle();
    }

    // B.1: remove during a fully excluded wave waits for the wave to end; no callback afterwards.
    [Test]
    public void Remove_DuringWave_WaitsUntilWaveEnds()
    {
        var rec = NotifierRecorder.Attach(_mm, 0x10000, Page);
        Start(0x10000, 0x11000);
        var remover = TestThread.Start(rec.Notifier.Remove);
        remover.AssertBlocked();
        Assert.That(Subs.IntervalCount, Is.EqualTo(1));
        End(0x10000, 0x11000);
        remover.AssertCompletes();
        Assert.That(Subs.IntervalCount, Is.Zero);
        rec.Clear();
        Start(0x10000, 0x11000);
        End(0x10000, 0x11000);
        Assert.That(rec.Events, Is.Empty);
        AssertIdle();
    }

    // B.1: removing a still-deferred insert just drops it, without waiting.
    [Test]
    public void Remove_OfDeferredInsert_DropsItWithoutWaiting()
    {
        using var a = NotifierRecorder.Attach(_mm, 0x10000, Page);
        Start(0x10000, 0x11000);
        var b = NotifierRecorder.Attach(_mm, 0x30000, Page);
        TestThread.Start(b.Notifier.Remove).AssertCompletes();
        End(0x10000, 0x11000);
        Assert.That(Subs.IntervalCount, Is.EqualTo(1));
        AssertIdle();
    }

    // HMM-R10: remove from inside an ops callback is a bug; the wave is undone.
    [Test]
    public void Remove_FromCallback_IsHmmR10()
    {
        using var rec = NotifierRecorder.Attach(_mm, 0x10000, Page);
        var victim = new IntervalNotifier(NoopOps.Instance);
        Assert.That(victim.Insert(_mm, 0x10000, Page), Is.EqualTo(Errno.Ok));
        rec.OnInvalidate = _ => victim.Remove();
        var e = Assert.Throws<KernelBugException>(() => Start(0x10000, 0x11000));
        Assert.That(e!.Rule, Is.EqualTo("HMM-R10"));
        rec.OnInvalidate = null;
        Assert.That(victim.IsInserted, Is.True);
        victim.Remove();
        AssertIdle();
    }

    // B.3: non-blockable start with a refusing callback → false (-EAGAIN), active undone, seq even again.
    // (The kernel's undo runs mn_itree_inv_end: a wave that went odd ends at the next even value,
    // never back at the old one, or a reader of a callback that did run would miss it.)
    [Test]
    public void NonBlockableStart_Refused_ReturnsFalseAndUndoes()
    {
        using var accepting = NotifierRecorder.Attach(_mm, 0x10000, Page);
        using var refusing = NotifierRecorder.Attach(_mm, 0x10800, Page);
        refusing.Refuse = r => !r.Blockable;
        using var after = NotifierRecorder.Attach(_mm, 0x11000, Page);
        ulong before = Subs.Seq;

        Assert.That(Start(0x10000, 0x12000, blockable: false), Is.False);
        Assert.That(Subs.ActiveInvalidateRanges, Is.Zero);
        Assert.That(Subs.Seq % 2, Is.Zero);
        Assert.That(Subs.Seq, Is.GreaterThanOrEqualTo(before));
        Assert.That(accepting.Events, Has.Count.EqualTo(1), "ran before the refusal");
        Assert.That(after.Events, Is.Empty, "dispatch stops at the refusal");
        Assert.That(refusing.Events.Single().Blockable, Is.False);
        AssertIdle();

        // Inside a concurrent wave the state is exactly as before: active back, seq still odd.
        Start(0x10000, 0x10001);
        ulong odd = Subs.Seq;
        Assert.That(Start(0x10000, 0x12000, blockable: false), Is.False);
        Assert.That(Subs.Seq, Is.EqualTo(odd));
        Assert.That(Subs.ActiveInvalidateRanges, Is.EqualTo(1));
        End(0x10000, 0x10001);
        AssertIdle();
    }

    // HMM-R08: refusing a blockable range is a bug.
    [Test]
    public void BlockableRefusal_IsHmmR08()
    {
        using var rec = NotifierRecorder.Attach(_mm, 0x10000, Page);
        rec.Refuse = _ => true;
        var e = Assert.Throws<KernelBugException>(() => Start(0x10000, 0x11000));
        Assert.That(e!.Rule, Is.EqualTo("HMM-R08"));
        rec.Refuse = null;
        AssertIdle();
    }

    // NTF-R01: end without a matching start (or with a different range) is a bug, state untouched.
    [Test]
    public void EndWithoutStart_IsNtfR01()
    {
        using var rec = NotifierRecorder.Attach(_mm, 0x10000, Page);
        Assert.That(Assert.Throws<KernelBugException>(() => End(0x10000, 0x11000))!.Rule, Is.EqualTo("NTF-R01"));
        Start(0x10000, 0x11000);
        Assert.That(Assert.Throws<KernelBugException>(() => End(0x10000, 0x12000))!.Rule, Is.EqualTo("NTF-R01"));
        Assert.That(Subs.ActiveInvalidateRanges, Is.EqualTo(1));
        End(0x10000, 0x11000);
        Assert.That(Assert.Throws<KernelBugException>(() => End(0x10000, 0x11000))!.Rule, Is.EqualTo("NTF-R01"));
        AssertIdle();
    }

    // B.3: callbacks run in tree (ascending start) order, once per intersecting interval.
    [Test]
    public void Dispatch_CallsIntersectingIntervalsInStartOrder()
    {
        var order = new List<ulong>();
        var ops = new OrderOps(order);
        var notifiers = new List<IntervalNotifier>();
        foreach (ulong s in new ulong[] { 0x50000, 0x10000, 0x30000, 0x20000, 0x90000 })
        {
            var n = new IntervalNotifier(ops);
            Assert.That(n.Insert(_mm, s, 0x8000), Is.EqualTo(Errno.Ok));
            notifiers.Add(n);
        }
        Start(0x17000, 0x51000);
        End(0x17000, 0x51000);
        Assert.That(order, Is.EqualTo(new ulong[] { 0x10000, 0x20000, 0x30000, 0x50000 }));
        foreach (var n in notifiers) n.Remove();
        AssertIdle();
    }

    // B.3: exit delivers one blockable RELEASE over [0, ULONG_MAX); notifiers survive and must be removed (HMM-R12).
    [Test]
    public void Release_DeliversOneReleaseEventOverWholeSpace()
    {
        var rec = NotifierRecorder.Attach(_mm, 0x10000, Page);
        _mm.Put();   // the last user: exit_mmap raises RELEASE, then UNMAP of everything (reference D, "process exit")
        Assert.That(rec.Events, Is.EqualTo(new[]
        {
            new RecordedEvent(NotifyEvent.Release, 0, ulong.MaxValue, true, null),
            new RecordedEvent(NotifyEvent.Unmap, 0, ulong.MaxValue, true, null),
        }));
        Assert.That(rec.Notifier.IsInserted, Is.True);
        AssertIdle();
        rec.Dispose();
        Assert.That(rec.Notifier.IsInserted, Is.False);
        AssertIdle();
    }

    // A.6: the recorder captures the owner of MIGRATE events only.
    [Test]
    public void Recorder_CapturesOwnerForMigrateOnly()
    {
        using var rec = NotifierRecorder.Attach(_mm);
        object owner = new();
        var migrate = new NotifierRange(_mm, 0x1000, 0x2000, NotifyEvent.Migrate, blockable: true, owner);
        _mm.NotifierHook!.InvalidateRangeStart(migrate);
        _mm.NotifierHook!.InvalidateRangeEnd(migrate);
        Start(0x1000, 0x2000);
        End(0x1000, 0x2000);
        Assert.That(rec.Events[0].Owner, Is.SameAs(owner));
        Assert.That(rec.Events[1].Owner, Is.Null);
        AssertIdle();
    }

    private sealed class NoopOps : IIntervalNotifierOps
    {
        public static readonly NoopOps Instance = new();

        public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
        {
            notifier.SetSeq(curSeq);
            return true;
        }
    }

    private sealed class OrderOps(List<ulong> order) : IIntervalNotifierOps
    {
        public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
        {
            order.Add(notifier.Start);
            notifier.SetSeq(curSeq);
            return true;
        }
    }
}
