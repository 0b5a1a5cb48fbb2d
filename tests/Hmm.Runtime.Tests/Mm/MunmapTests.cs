using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>munmap: VMA splits, data kept outside the hole, THP split, RSS, and its events (reference D rows 1, THP split).</summary>
public class MunmapTests
{
    [Test]
    public void Middle_SplitsTheVma_KeepsDataOutside_SegfaultsInside()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(6 * P, RW, PrivAnon);
        Fill(p, a, 6);
        p.Munmap(a + 2 * P, 2 * P);
        Assert.That(Layout(p).Select(v => (v.Start, v.End)), Is.EqualTo(new[] { (a, a + 2 * P), (a + 4 * P, a + 6 * P) }));
        Assert.That(p.Load<int>(a + P), Is.EqualTo(1001));
        Assert.That(p.Load<int>(a + 4 * P), Is.EqualTo(1004));
        Assert.That(p.Load<int>(a + 5 * P), Is.EqualTo(1005));
        Assert.Throws<SegmentationFault>(() => p.Load<int>(a + 2 * P));
        Assert.Throws<SegmentationFault>(() => p.Store(a + 3 * P, 1));
        Assert.That(p.Mm.EntryAt(a + 2 * P).IsNone, Is.True);
        Assert.That(p.Mm.RssAnon, Is.EqualTo(4));
        Assert.That(machine.UsedPages, Is.EqualTo(4));
        machine.CheckInvariants();
    }

    [Test]
    public void UnalignedLength_IsRoundedUp_AndSpanningVmasRemovesAll()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        p.Mprotect(a + P, P, Prot.Read);
        Fill(p, a, 1);
        p.Munmap(a, 2 * P + 1);
        Assert.That(Layout(p).Select(v => (v.Start, v.End)), Is.EqualTo(new[] { (a + 3 * P, a + 4 * P) }));
        Assert.That(p.Mm.RssAnon, Is.Zero);
        machine.CheckInvariants();
    }

    [Test]
    public void Whole_FreesPagesAndPageTables()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        int tables0 = p.Mm.PageTablePages;
        ulong a = p.Mmap(8 * P, RW, PrivAnon);
        Fill(p, a, 8);
        Assert.That(p.Mm.PageTablePages, Is.GreaterThan(tables0));
        p.Munmap(a, 8 * P);
        Assert.That(p.Mm.Vmas, Is.Empty);
        Assert.That(machine.UsedPages, Is.Zero);
        Assert.That(p.Mm.PageTablePages, Is.EqualTo(tables0));
        machine.CheckInvariants();
    }

    [Test]
    public void PartialThp_SplitsIt_KeepsTheOtherPagesData()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * Huge, RW, PrivAnon);
        Assert.That(a % Huge, Is.Zero);
        p.Madvise(a, 2 * Huge, Advice.HugePage);
        p.Store(a, 1);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        for (ulong i = 0; i < 512; i += 17) p.Store(a + i * P + 4, (int)i + 1);
        Assert.That(p.Mm.RssAnon, Is.EqualTo(512));
        p.Munmap(a + 17 * P, P);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.False, "the PMD was split");
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(p.Mm.RssAnon, Is.EqualTo(511));
        Assert.That(p.Load<int>(a), Is.EqualTo(1));
        for (ulong i = 0; i < 512; i += 17)
        {
            if (i == 17) { Assert.Throws<SegmentationFault>(() => p.Load<int>(a + i * P + 4)); continue; }
            Assert.That(p.Load<int>(a + i * P + 4), Is.EqualTo((int)i + 1));
        }
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void SharedFileMapping_Munmap_KeepsThePageCache()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(2 * P);
        ulong m = p.Mmap(2 * P, RW, MapFlags.Shared, f);
        p.Store(m + P, 55);
        p.Munmap(m, 2 * P);
        Assert.That(p.Mm.RssFile, Is.Zero);
        var buf = new byte[4];
        f.Pread(P, buf);
        Assert.That(BitConverter.ToInt32(buf), Is.EqualTo(55));
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    // Reference D row 1: munmap → one UNMAP over the (page-rounded) request range.
    [Test]
    public void Event_Munmap_RaisesUnmapOverTheRequestRange()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(8 * P, RW, PrivAnon);
        Fill(p, a, 8);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Munmap(a + 2 * P, 3 * P - 100);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Unmap, a + 2 * P, a + 5 * P) }));
        machine.CheckInvariants();
    }

    // Reference D row 1: one range spanning all affected VMAs (and the holes between them); never-touched pages too.
    [Test]
    public void Event_MunmapAcrossVmasAndHoles_RaisesOneUnmap()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(8 * P, RW, PrivAnon);
        p.Munmap(a + 3 * P, P);
        p.Mprotect(a + 5 * P, P, Prot.Read);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Munmap(a + P, 6 * P);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Unmap, a + P, a + 7 * P) }));
        Assert.That(Layout(p).Select(v => (v.Start, v.End)), Is.EqualTo(new[] { (a, a + P), (a + 7 * P, a + 8 * P) }));
        machine.CheckInvariants();
    }

    // Reference D row 1: nothing mapped in the range → nothing unmapped, no event.
    [Test]
    public void Event_MunmapOfNothing_RaisesNothing()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Munmap(a + 4 * P, 4 * P);
        p.Munmap(0x10000, P);
        Assert.That(rec.Events, Is.Empty);
        Assert.That(Layout(p), Has.Length.EqualTo(1));
        machine.CheckInvariants();
    }

    // Reference D "THP split (__split_huge_pmd)": CLEAR over the PMD-aligned range, before the UNMAP of the munmap.
    [Test]
    public void Event_PartialMunmapOfThp_RaisesClearOverThePmd_ThenUnmap()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * Huge, RW, PrivAnon);
        p.Madvise(a, 2 * Huge, Advice.HugePage);
        p.Store(a + Huge, 1);
        Assert.That(p.Mm.EntryAt(a + Huge).IsHuge, Is.True);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Munmap(a + Huge + 4 * P, 2 * P);
        Assert.That(rec.Events, Is.EqualTo(new[]
        {
            Ev(NotifyEvent.Clear, a + Huge, a + 2 * Huge),
            Ev(NotifyEvent.Unmap, a + Huge + 4 * P, a + Huge + 6 * P),
        }));
        Assert.That(p.Load<int>(a + Huge), Is.EqualTo(1));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // Reference D row 1: a whole THP unmapped is zapped as a PMD: only the UNMAP, no split CLEAR.
    [Test]
    public void Event_WholeThpMunmap_RaisesOnlyUnmap()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * Huge, RW, PrivAnon);
        p.Madvise(a, 2 * Huge, Advice.HugePage);
        p.Store(a, 1);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Munmap(a, Huge);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Unmap, a, a + Huge) }));
        Assert.That(machine.UsedPages, Is.Zero);
        machine.CheckInvariants();
    }

    // Reference D row 1 applies to a recorder on a sub-interval too: it receives the full unmap range.
    [Test]
    public void Event_RecorderOnSubInterval_SeesTheFullRange_NonOverlappingSeesNothing()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(8 * P, RW, PrivAnon);
        using var inside = NotifierRecorder.Attach(p.Mm, a + 2 * P, P);
        using var outside = NotifierRecorder.Attach(p.Mm, a + 6 * P, P);
        p.Munmap(a, 4 * P);
        Assert.That(inside.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Unmap, a, a + 4 * P) }));
        Assert.That(outside.Events, Is.Empty);
        machine.CheckInvariants();
    }
}
