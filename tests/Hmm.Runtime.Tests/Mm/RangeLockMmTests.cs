using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using Hmm.Runtime.Tests.Notifiers;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>Range locks and range monitors against real mm operations (acceptance 4). All waits are bounded.</summary>
public class RangeLockMmTests
{
    [Test]
    public void OverlappingMunmap_BlocksUntilRelease_DataStillReadableMeanwhile()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(8 * P, RW, PrivAnon);
        Fill(p, a, 8);
        p.Store<byte>(a + 2 * P + 100, 0x5A);
        using var rec = NotifierRecorder.Attach(p.Mm);
        var rangeLock = RangeLock.Acquire(p.Mm, a + 2 * P, a + 3 * P);
        var munmap = TestThread.Start(() => p.Munmap(a + P, 4 * P));
        munmap.AssertBlocked(200);
        // The device still sees the pages: PTEs present, bytes intact (read without the mmap lock munmap holds).
        Assert.That(PeekPhysical(p, a + 2 * P + 100), Is.EqualTo((byte)0x5A));
        Assert.That(p.Mm.EntryAt(a + P).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(rec.Events, Is.Empty, "no callback runs while the range is locked");
        rangeLock.Release();
        munmap.AssertCompletes();
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Unmap, a + P, a + 5 * P) }));
        Assert.Throws<SegmentationFault>(() => p.Load<int>(a + 2 * P));
        Assert.That(p.Load<int>(a), Is.EqualTo(1000));
        Assert.That(p.Mm.RssAnon, Is.EqualTo(4));
        machine.CheckInvariants();
    }

    [Test]
    public void NonOverlappingMunmap_CompletesWhileTheLockIsHeld()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(8 * P, RW, PrivAnon);
        Fill(p, a, 8);
        using (RangeLock.Acquire(p.Mm, a + 4 * P, a + 8 * P))
        {
            TestThread.Start(() => p.Munmap(a, 4 * P)).AssertCompletes();
            Assert.That(Layout(p).Select(v => (v.Start, v.End)), Is.EqualTo(new[] { (a + 4 * P, a + 8 * P) }));
            AssertFilled(p, a + 4 * P, 4, seed: 1004);
        }
        machine.CheckInvariants();
    }

    [Test]
    public void OomKill_SkipsTheVmaOverlappingALock_WithItsPtesUnchanged()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        ulong b = p.Mmap(4 * P, Prot.Read, PrivAnon, addr: a - 8 * P);
        Fill(p, a, 4);
        Assert.That(p.Load<int>(b), Is.Zero);
        var before = Enumerable.Range(0, 4).Select(i => p.Mm.EntryAt(a + (ulong)i * P)).ToArray();
        var rangeLock = RangeLock.Acquire(p.Mm, a + P, a + 2 * P);
        IReadOnlyList<(ulong Start, ulong End)>? skipped = null;
        TestThread.Start(() => skipped = p.OomKill()).AssertCompletes();
        Assert.That(skipped, Is.EqualTo(new[] { (a, a + 4 * P) }));
        Assert.That(Enumerable.Range(0, 4).Select(i => p.Mm.EntryAt(a + (ulong)i * P)), Is.EqualTo(before));
        Assert.That(PeekPhysical(p, a + P), Is.EqualTo((byte)(1001 & 0xFF)));
        Assert.That(p.Mm.EntryAt(b).IsNone, Is.True, "the other VMA was reaped");
        Assert.That(p.Mm.RssAnon, Is.EqualTo(4));
        rangeLock.Release();
        machine.CheckInvariants();
        p.Exit();
        machine.CheckInvariants();
        Assert.That(machine.UsedPages, Is.Zero);
    }

    [Test]
    public void Monitor_ClearedByOverlappingDontNeed_NotByANonOverlappingOne()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(8 * P, RW, PrivAnon);
        Fill(p, a, 8);
        using var monitor = RangeMonitor.Register(p.Mm, a + 4 * P, a + 6 * P);
        Assert.That(monitor.Valid, Is.True);
        p.Madvise(a, 4 * P, Advice.DontNeed);
        Assert.That(monitor.Valid, Is.True, "[a, a+4P) does not overlap [a+4P, a+6P)");
        p.Madvise(a + 5 * P, P, Advice.DontNeed);
        Assert.That(monitor.Valid, Is.False);
        monitor.Revalidate();
        Assert.That(monitor.Valid, Is.True);
        p.Madvise(a + 6 * P, 2 * P, Advice.DontNeed);
        Assert.That(monitor.Valid, Is.True);
        AssertZero(p, a + 5 * P, 1);
        Assert.That(p.Load<int>(a + 4 * P), Is.EqualTo(1004));
        machine.CheckInvariants();
    }

    [Test]
    public void OverlappingCowFault_BlocksUntilRelease()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Assert.That(p.Load<int>(a), Is.Zero);   // zero page: the write must replace it (CLEAR)
        var rangeLock = RangeLock.Acquire(p.Mm, a, a + P);
        var write = TestThread.Start(() => p.Store(a, 7));
        write.AssertBlocked(200);
        Assert.That(p.Mm.EntryAt(a).Pfn, Is.EqualTo(Machine.ZeroPfn));
        rangeLock.Release();
        write.AssertCompletes();
        Assert.That(p.Load<int>(a), Is.EqualTo(7));
        machine.CheckInvariants();
    }
}
