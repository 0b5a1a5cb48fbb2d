using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>mremap: shrink, grow in place, move, Fixed, DontUnmap, and their events (reference D "mremap").</summary>
public class MremapTests
{
    [Test]
    public void Shrink_UnmapsTheTail_KeepsTheHead()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        Assert.That(p.Mremap(a, 4 * P, 2 * P, MremapFlags.None), Is.EqualTo(a));
        Assert.That(Layout(p).Select(v => (v.Start, v.End)), Is.EqualTo(new[] { (a, a + 2 * P) }));
        AssertFilled(p, a, 2);
        Assert.Throws<SegmentationFault>(() => p.Load<int>(a + 2 * P));
        Assert.That(p.Mm.RssAnon, Is.EqualTo(2));
        machine.CheckInvariants();
    }

    [Test]
    public void GrowInPlace_ExtendsTheVma_NewPartReadsZero()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        p.Munmap(a + 2 * P, 2 * P);
        Fill(p, a, 2);
        Assert.That(p.Mremap(a, 2 * P, 4 * P, MremapFlags.None), Is.EqualTo(a));
        Assert.That(Layout(p).Select(v => (v.Start, v.End)), Is.EqualTo(new[] { (a, a + 4 * P) }));
        AssertFilled(p, a, 2);
        AssertZero(p, a + 2 * P, 2);
        p.Store(a + 3 * P, 9);
        machine.CheckInvariants();
    }

    [Test]
    public void Grow_BlockedWithoutMayMove_IsEnomem_WithMayMoveMovesTheData()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        p.Mprotect(a + 2 * P, 2 * P, Prot.Read);   // a different VMA right after [a, a+2P)
        Fill(p, a, 2);
        var e = Assert.Throws<ErrnoException>(() => p.Mremap(a, 2 * P, 3 * P, MremapFlags.None))!;
        Assert.That(e.Errno, Is.EqualTo(Errno.ENOMEM));
        ulong moved = p.Mremap(a, 2 * P, 3 * P, MremapFlags.MayMove);
        Assert.That(moved, Is.Not.EqualTo(a));
        AssertFilled(p, moved, 2);
        AssertZero(p, moved + 2 * P, 1);
        Assert.Throws<SegmentationFault>(() => p.Load<int>(a));
        var layout = Layout(p);
        Assert.That(layout.Any(v => v.Start == moved && v.End == moved + 3 * P), Is.True);
        Assert.That(layout.Any(v => v.Start == a + 2 * P && v.End == a + 4 * P), Is.True);
        Assert.That(p.Mm.RssAnon, Is.EqualTo(2));
        Assert.That(machine.UsedPages, Is.EqualTo(2), "pages moved, not copied");
        machine.CheckInvariants();
    }

    [Test]
    public void Fixed_MovesToTheGivenAddress_ReplacingWhatIsThere()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        ulong b = p.Mmap(4 * P, RW, PrivAnon, addr: a - 16 * P);
        Assert.That(b, Is.EqualTo(a - 16 * P));
        Fill(p, a, 4);
        Fill(p, b, 4, seed: 5000);
        ulong r = p.Mremap(a, 4 * P, 4 * P, MremapFlags.MayMove | MremapFlags.Fixed, b);
        Assert.That(r, Is.EqualTo(b));
        AssertFilled(p, b, 4);
        Assert.Throws<SegmentationFault>(() => p.Load<int>(a));
        Assert.That(Layout(p).Select(v => (v.Start, v.End)), Is.EqualTo(new[] { (b, b + 4 * P) }));
        Assert.That(p.Mm.RssAnon, Is.EqualTo(4));
        Assert.That(machine.UsedPages, Is.EqualTo(4), "the replaced pages were freed");
        machine.CheckInvariants();
    }

    [Test]
    public void Fixed_Shrinking_MovesOnlyTheHead()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        ulong target = a - 32 * P;
        Assert.That(p.Mremap(a, 4 * P, 2 * P, MremapFlags.MayMove | MremapFlags.Fixed, target), Is.EqualTo(target));
        AssertFilled(p, target, 2);
        Assert.That(Layout(p).Select(v => (v.Start, v.End)), Is.EqualTo(new[] { (target, target + 2 * P) }));
        Assert.That(machine.UsedPages, Is.EqualTo(2));
        machine.CheckInvariants();
    }

    [Test]
    public void DontUnmap_MovesTheData_OldRangeStaysMappedAndReadsZero()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        ulong moved = p.Mremap(a, 4 * P, 4 * P, MremapFlags.MayMove | MremapFlags.DontUnmap);
        Assert.That(moved, Is.Not.EqualTo(a));
        AssertFilled(p, moved, 4);
        Assert.That(p.Mm.EntryAt(a).IsNone, Is.True);
        AssertZero(p, a, 4);
        var layout = Layout(p);
        Assert.That(layout.Any(v => v.Start == a && v.End == a + 4 * P), Is.True, "old VMA kept");
        Assert.That(layout.Any(v => v.Start == moved && v.End == moved + 4 * P), Is.True);
        p.Store(a, 3);
        Assert.That(p.Load<int>(moved), Is.EqualTo(1000), "the old range is independent now");
        Assert.That(p.Mm.RssAnon, Is.EqualTo(5));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void Move_OfASharedFileMapping_KeepsTheFileOffset()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(4 * P);
        ulong m = p.Mmap(2 * P, RW, MapFlags.Shared, f, offset: 2 * P);
        p.Store(m + P, 8);
        ulong target = m - 64 * P;
        p.Mremap(m, 2 * P, 2 * P, MremapFlags.MayMove | MremapFlags.Fixed, target);
        Assert.That(p.Load<int>(target + P), Is.EqualTo(8));
        p.Store(target, 4);
        var buf = new byte[4];
        f.Pread(2 * P, buf);
        Assert.That(BitConverter.ToInt32(buf), Is.EqualTo(4));
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void Move_OfAThp_AtAlignedAddresses_KeepsItHuge()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        p.Madvise(a, Huge, Advice.HugePage);
        p.Store(a + 100 * P, 12);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        ulong target = a - 4 * Huge;
        p.Mremap(a, Huge, Huge, MremapFlags.MayMove | MremapFlags.Fixed, target);
        Assert.That(p.Mm.EntryAt(target).IsHuge, Is.True);
        Assert.That(p.Load<int>(target + 100 * P), Is.EqualTo(12));
        Assert.That(p.Mm.RssAnon, Is.EqualTo(512));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // Reference D "mremap": shrinking mremap = munmap of the tail → one UNMAP over the tail.
    [Test]
    public void Event_Shrink_RaisesUnmapOfTheTail()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mremap(a, 4 * P, P, MremapFlags.None);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Unmap, a + P, a + 4 * P) }));
        machine.CheckInvariants();
    }

    // Reference D "mremap": growth in place moves no page: no event.
    [Test]
    public void Event_GrowInPlace_RaisesNothing()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        p.Munmap(a + 2 * P, 2 * P);
        Fill(p, a, 2);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mremap(a, 2 * P, 4 * P, MremapFlags.MayMove);
        Assert.That(rec.Events, Is.Empty);
        machine.CheckInvariants();
    }

    // Reference D "mremap": a move raises UNMAP on the old range around moving the page tables, then another when the old VMA is unmapped.
    [Test]
    public void Event_Move_RaisesUnmapOfTheOldRangeTwice()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        p.Mprotect(a + 2 * P, 2 * P, Prot.Read);
        Fill(p, a, 2);
        using var rec = NotifierRecorder.Attach(p.Mm);
        ulong moved = p.Mremap(a, 2 * P, 3 * P, MremapFlags.MayMove);
        Assert.That(moved, Is.Not.EqualTo(a));
        Assert.That(rec.Events, Is.EqualTo(new[]
        {
            Ev(NotifyEvent.Unmap, a, a + 2 * P),
            Ev(NotifyEvent.Unmap, a, a + 2 * P),
        }));
        machine.CheckInvariants();
    }

    // Reference D "mremap" (MREMAP_FIXED): UNMAP of what was at the target (munmap row), then the two UNMAPs of the old range.
    [Test]
    public void Event_FixedOverAMapping_RaisesUnmapOfTargetThenOldRangeTwice()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        ulong b = p.Mmap(2 * P, RW, PrivAnon, addr: a - 16 * P);
        Fill(p, a, 2);
        Fill(p, b, 2);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mremap(a, 2 * P, 2 * P, MremapFlags.MayMove | MremapFlags.Fixed, b);
        Assert.That(rec.Events, Is.EqualTo(new[]
        {
            Ev(NotifyEvent.Unmap, b, b + 2 * P),
            Ev(NotifyEvent.Unmap, a, a + 2 * P),
            Ev(NotifyEvent.Unmap, a, a + 2 * P),
        }));
        machine.CheckInvariants();
    }

    // Reference D "mremap" (MREMAP_DONTUNMAP): only the UNMAP around the page-table move; the old VMA stays.
    [Test]
    public void Event_DontUnmap_RaisesOneUnmap()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mremap(a, 4 * P, 4 * P, MremapFlags.MayMove | MremapFlags.DontUnmap);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Unmap, a, a + 4 * P) }));
        machine.CheckInvariants();
    }
}
