using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Notifiers;

/// <summary>Range locks and range monitors (HMM v13-era tools; docs/notifiers.md), dispatched through the same per-mm state (B.3).</summary>
[TestFixture]
public sealed class RangeLockTests
{
    private Machine _machine = null!;
    private AddressSpace _mm = null!;
    private NotifierRecorder _rec = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine();
        _mm = _machine.CreateProcess("p").Mm;
        _rec = NotifierRecorder.Attach(_mm);
    }

    [TearDown]
    public void TearDown()
    {
        _rec.Dispose();
        Subs.CheckInvariants();
        _machine.Dispose();
    }

    private MmuNotifierSubscriptions Subs => (MmuNotifierSubscriptions)_mm.NotifierHook!;

    private NotifierRange Range(ulong start, ulong end, bool blockable = true) => new(_mm, start, end, NotifyEvent.Unmap, blockable);

    // Range lock: an overlapping blockable invalidation waits (before any callback) until release.
    [Test]
    public void OverlappingBlockableInvalidation_WaitsForRelease()
    {
        var rangeLock = RangeLock.Acquire(_mm, 0x10000, 0x20000);
        var range = Range(0x1F000, 0x30000);
        var munmap = TestThread.Start(() => _mm.NotifierHook!.InvalidateRangeStart(range));
        munmap.AssertBlocked();
        Assert.That(_rec.Events, Is.Empty, "no callback may run while the range is locked");
        Assert.That(Subs.ActiveInvalidateRanges, Is.Zero);

        rangeLock.Release();
        munmap.AssertCompletes();
        Assert.That(_rec.Events, Has.Count.EqualTo(1));
        _mm.NotifierHook!.InvalidateRangeEnd(range);
        Assert.That(rangeLock.IsHeld, Is.False);
    }

    // Range lock: a non-overlapping invalidation proceeds at once.
    [Test]
    public void NonOverlappingInvalidation_DoesNotWait()
    {
        using var rangeLock = RangeLock.Acquire(_mm, 0x10000, 0x20000);
        var range = Range(0x20000, 0x30000);
        TestThread.Start(() => _mm.NotifierHook!.InvalidateRangeStart(range)).AssertCompletes();
        Assert.That(_rec.Events, Has.Count.EqualTo(1));
        _mm.NotifierHook!.InvalidateRangeEnd(range);
    }

    // Range lock: a non-blockable overlapping invalidation fails at once; nothing invalidated or changed.
    [Test]
    public void OverlappingNonBlockableInvalidation_ReturnsFalse()
    {
        using var rangeLock = RangeLock.Acquire(_mm, 0x10000, 0x20000);
        ulong seq = Subs.Seq;
        Assert.That(_mm.NotifierHook!.InvalidateRangeStart(Range(0x0, 0x10001, blockable: false)), Is.False);
        Assert.That(_rec.Events, Is.Empty);
        Assert.That(Subs.Seq, Is.EqualTo(seq));
        Assert.That(Subs.ActiveInvalidateRanges, Is.Zero);
    }

    // Range lock: acquiring sleeps while an overlapping invalidation is in progress; overlapping locks coexist.
    [Test]
    public void Acquire_WaitsForOverlappingInvalidation_AndLocksDoNotExcludeEachOther()
    {
        var range = Range(0x10000, 0x11000);
        _mm.NotifierHook!.InvalidateRangeStart(range);
        RangeLock? taken = null;
        var acquirer = TestThread.Start(() => taken = RangeLock.Acquire(_mm, 0x10800, 0x20000));
        acquirer.AssertBlocked();
        using (var unrelated = RangeLock.Acquire(_mm, 0x40000, 0x50000)) Assert.That(unrelated.IsHeld, Is.True);
        _mm.NotifierHook!.InvalidateRangeEnd(range);
        acquirer.AssertCompletes();
        using var second = RangeLock.Acquire(_mm, 0x10000, 0x30000);
        Assert.That(taken!.IsHeld && second.IsHeld, Is.True);
        taken.Dispose();
        Assert.That(Assert.Throws<KernelBugException>(taken.Release)!.Rule, Is.EqualTo("LOCKDEP"));
    }

    // Range monitor: valid at registration, cleared by overlapping starts only, Revalidate sets it again.
    [Test]
    public void Monitor_ClearedByOverlapOnly_AndRevalidates()
    {
        using var monitor = RangeMonitor.Register(_mm, 0x10000, 0x20000);
        Assert.That(monitor.Valid, Is.True);

        var outside = Range(0x20000, 0x30000);
        _mm.NotifierHook!.InvalidateRangeStart(outside);
        _mm.NotifierHook!.InvalidateRangeEnd(outside);
        Assert.That(monitor.Valid, Is.True, "adjacent, not overlapping");

        var inside = Range(0x1F000, 0x21000);
        _mm.NotifierHook!.InvalidateRangeStart(inside);
        Assert.That(monitor.Valid, Is.False);
        var revalidate = TestThread.Start(monitor.Revalidate);
        revalidate.AssertBlocked();
        _mm.NotifierHook!.InvalidateRangeEnd(inside);
        revalidate.AssertCompletes();
        Assert.That(monitor.Valid, Is.True);

        _mm.NotifierHook!.Release(_mm);
        Assert.That(monitor.Valid, Is.False, "mm release invalidates everything");
    }

    // Range monitor: disposal unregisters it.
    [Test]
    public void Monitor_Dispose_Unregisters()
    {
        var monitor = RangeMonitor.Register(_mm, 0x10000, 0x20000);
        monitor.Dispose();
        var inside = Range(0x10000, 0x11000);
        _mm.NotifierHook!.InvalidateRangeStart(inside);
        _mm.NotifierHook!.InvalidateRangeEnd(inside);
        Assert.That(monitor.Valid, Is.True, "no longer watched");
        Assert.Throws<ObjectDisposedException>(monitor.Revalidate);
    }
}
