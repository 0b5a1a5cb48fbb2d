using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>madvise: DONTNEED, FREE (+ Reclaim), HUGEPAGE, COLLAPSE, and their events (reference D madvise rows).</summary>
public class MadviseTests
{
    [Test]
    public void DontNeed_PrivateAnon_ReadsZeroAfterwards_VmaKept()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        p.Madvise(a + P, 2 * P, Advice.DontNeed);
        Assert.That(Layout(p), Has.Length.EqualTo(1));
        Assert.That(p.Load<int>(a), Is.EqualTo(1000));
        AssertZero(p, a + P, 2);
        Assert.That(p.Load<int>(a + 3 * P), Is.EqualTo(1003));
        Assert.That(p.Mm.RssAnon, Is.EqualTo(2));
        Assert.That(machine.UsedPages, Is.EqualTo(2));
        machine.CheckInvariants();
    }

    [Test]
    public void DontNeed_SharedAnonAndSharedFile_ReadTheOldDataBack()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(2 * P);
        ulong s = p.Mmap(2 * P, RW, SharedAnon);
        ulong m = p.Mmap(2 * P, RW, MapFlags.Shared, f);
        Fill(p, s, 2);
        Fill(p, m, 2, seed: 7);
        p.Madvise(s, 2 * P, Advice.DontNeed);
        p.Madvise(m, 2 * P, Advice.DontNeed);
        Assert.That(p.Mm.EntryAt(s).IsNone, Is.True);
        Assert.That(p.Mm.RssFile, Is.Zero);
        AssertFilled(p, s, 2);
        AssertFilled(p, m, 2, seed: 7);
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void DontNeed_PrivateFile_DropsTheCowCopy_FileDataReturns()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(P);
        f.Pwrite(0, BitConverter.GetBytes(5));
        ulong m = p.Mmap(P, RW, MapFlags.Private, f);
        p.Store(m, 6);
        p.Madvise(m, P, Advice.DontNeed);
        Assert.That(p.Load<int>(m), Is.EqualTo(5));
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void Free_KeepsDataUntilReclaim_ThenReadsZero_WrittenPageSurvives()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        p.Madvise(a, 4 * P, Advice.Free);
        AssertFilled(p, a, 4);
        p.Store(a + 2 * P + 8, 1);
        Assert.That(machine.Reclaim(), Is.EqualTo(3));
        AssertZero(p, a, 2);
        Assert.That(p.Load<int>(a + 2 * P), Is.EqualTo(1002));
        Assert.That(p.Load<int>(a + 2 * P + 8), Is.EqualTo(1));
        Assert.That(p.Load<int>(a + 3 * P), Is.Zero);
        Assert.That(p.Mm.RssAnon, Is.EqualTo(1));
        Assert.That(machine.UsedPages, Is.EqualTo(1));
        Assert.That(machine.Reclaim(), Is.Zero, "the written page lost its lazy-free mark");
        machine.CheckInvariants();
    }

    [Test]
    public void Free_OnSharedMemory_IsEinval()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong s = p.Mmap(2 * P, RW, SharedAnon);
        p.Store(s, 3);
        var snap = new MmSnapshot(p, s);
        var e = Assert.Throws<ErrnoException>(() => p.Madvise(s, 2 * P, Advice.Free))!;
        Assert.That(e.Errno, Is.EqualTo(Errno.EINVAL));
        snap.AssertUnchanged();
        machine.CheckInvariants();
    }

    [Test]
    public void HugePage_ThenWrite_MapsAPmd_NoHugePageDoesNot()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * Huge, RW, PrivAnon);
        p.Madvise(a, 2 * Huge, Advice.HugePage);
        Assert.That(Layout(p).Select(v => (v.Start, v.End)), Is.EqualTo(new[] { (a, a + 2 * Huge), (a + 2 * Huge, a + 4 * Huge) }));
        Assert.That(Layout(p)[0].Flags & VmFlags.HugePage, Is.EqualTo(VmFlags.HugePage));
        p.Store(a + 5 * P, 1);
        Assert.That(p.Mm.EntryAt(a + 5 * P).IsHuge, Is.True);
        Assert.That(p.Mm.RssAnon, Is.EqualTo(512));
        Assert.That(p.Load<int>(a + 5 * P), Is.EqualTo(1));
        Assert.That(p.Load<int>(a + 6 * P), Is.Zero);
        p.Store(a + 2 * Huge, 2);
        Assert.That(p.Mm.EntryAt(a + 2 * Huge).IsHuge, Is.False, "no MADV_HUGEPAGE there");
        Assert.That(p.Load<int>(a + Huge), Is.Zero);
        Assert.That(p.Mm.EntryAt(a + Huge).IsHuge, Is.True, "a read maps the huge zero page");
        Assert.That(p.Mm.EntryAt(a + Huge).IsWritable, Is.False);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void Collapse_MakesAPmd_KeepingTheData()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        Assert.That(a % Huge, Is.Zero);
        for (ulong i = 0; i < 512; i += 7) p.Store(a + i * P, (int)i + 1);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.False);
        p.Madvise(a, Huge, Advice.Collapse);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        Assert.That(p.Mm.EntryAt(a).IsWritable, Is.True);
        for (ulong i = 0; i < 512; i++)
            Assert.That(p.Load<int>(a + i * P), Is.EqualTo(i % 7 == 0 ? (int)i + 1 : 0));
        Assert.That(p.Mm.RssAnon, Is.EqualTo(512));
        Assert.That(machine.UsedPages, Is.EqualTo(512));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // Reference D "madvise(MADV_DONTNEED)": CLEAR per VMA intersection.
    [Test]
    public void Event_DontNeed_RaisesClearPerVmaIntersection()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(6 * P, RW, PrivAnon);
        p.Mprotect(a + 3 * P, 3 * P, Prot.Read);
        Fill(p, a, 3);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Madvise(a + P, 4 * P, Advice.DontNeed);
        Assert.That(rec.Events, Is.EqualTo(new[]
        {
            Ev(NotifyEvent.Clear, a + P, a + 3 * P),
            Ev(NotifyEvent.Clear, a + 3 * P, a + 5 * P),
        }));
        machine.CheckInvariants();
    }

    // Reference D "madvise(MADV_FREE)": CLEAR over the range.
    [Test]
    public void Event_Free_RaisesClearOverTheRange()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(6 * P, RW, PrivAnon);
        Fill(p, a, 6);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Madvise(a + P, 3 * P, Advice.Free);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a + P, a + 4 * P) }));
        machine.CheckInvariants();
    }

    // Reference D "madvise(MADV_PAGEOUT), reclaim": CLEAR per folio mapping — one page for a lazy-free base page.
    [Test]
    public void Event_ReclaimOfLazyFreePage_RaisesClearOfOnePage()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 2);
        p.Madvise(a, 4 * P, Advice.Free);
        p.Store(a, 1);
        using var rec = NotifierRecorder.Attach(p.Mm);
        Assert.That(machine.Reclaim(), Is.EqualTo(1));
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a + P, a + 2 * P) }));
        machine.CheckInvariants();
    }

    // Reference D "khugepaged / MADV_COLLAPSE": CLEAR over the PMD range.
    [Test]
    public void Event_Collapse_RaisesClearOverThePmd()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * Huge, RW, PrivAnon);
        Fill(p, a + Huge, 3);
        using var rec = NotifierRecorder.Attach(p.Mm);
        // Only the populated block: an empty PMD slot first would end madvise_collapse's walk (SCAN_PMD_NONE).
        p.Madvise(a + Huge, Huge, Advice.Collapse);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a + Huge, a + 2 * Huge) }));
        Assert.That(p.Mm.EntryAt(a + Huge).IsHuge, Is.True);
        AssertFilled(p, a + Huge, 3);
        machine.CheckInvariants();
    }

    // Reference D: MADV_HUGEPAGE only changes VMA flags, no PTE: no event.
    [Test]
    public void Event_HugePageAdvice_RaisesNothing()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * Huge, RW, PrivAnon);
        Fill(p, a, 4);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Madvise(a, 2 * Huge, Advice.HugePage);
        p.Madvise(a, Huge, Advice.NoHugePage);
        Assert.That(rec.Events, Is.Empty);
        AssertFilled(p, a, 4);
        machine.CheckInvariants();
    }

    // Reference D "THP split" + "MADV_DONTNEED": a DONTNEED cutting a THP splits it (CLEAR over the PMD) then clears the range.
    [Test]
    public void Event_DontNeedInsideThp_RaisesSplitClearThenRangeClear()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        p.Madvise(a, Huge, Advice.HugePage);
        Fill(p, a, 8);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Madvise(a + 2 * P, 2 * P, Advice.DontNeed);
        Assert.That(rec.Events, Is.EqualTo(new[]
        {
            Ev(NotifyEvent.Clear, a, a + Huge),
            Ev(NotifyEvent.Clear, a + 2 * P, a + 4 * P),
        }));
        AssertFilled(p, a, 2);
        AssertZero(p, a + 2 * P, 2);
        AssertFilled(p, a + 4 * P, 4, seed: 1004);
        Assert.That(p.Mm.RssAnon, Is.EqualTo(510));
        machine.CheckInvariants();
        ExitAll(machine);
    }
}
