using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>fork: COW semantics, shared mappings, RSS, and its events (reference D "fork").</summary>
public class ForkTests
{
    [Test]
    public void PrivateAnon_ChildAndParentSeeTheirOwnWrites()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        var c = p.Fork();
        Assert.That(Layout(c), Is.EqualTo(Layout(p)));
        AssertFilled(c, a, 4);
        Assert.That(machine.UsedPages, Is.EqualTo(4), "pages are shared until written");
        Assert.That(p.Mm.EntryAt(a).IsWritable, Is.False, "parent write-protected");
        Assert.That(c.Mm.EntryAt(a).IsWritable, Is.False);
        c.Store(a, 1);
        p.Store(a + P, 2);
        Assert.That(p.Load<int>(a), Is.EqualTo(1000));
        Assert.That(c.Load<int>(a), Is.EqualTo(1));
        Assert.That(p.Load<int>(a + P), Is.EqualTo(2));
        Assert.That(c.Load<int>(a + P), Is.EqualTo(1001));
        Assert.That(machine.UsedPages, Is.EqualTo(6));
        Assert.That(p.Mm.RssAnon, Is.EqualTo(4));
        Assert.That(c.Mm.RssAnon, Is.EqualTo(4));
        machine.CheckInvariants();
        c.Exit();
        p.Store(a + 2 * P, 3);   // now exclusive again: reused, not copied
        Assert.That(machine.UsedPages, Is.EqualTo(4));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void SharedMappings_SeeEachOthersWrites_AfterFork()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(P);
        ulong s = p.Mmap(P, RW, SharedAnon);
        ulong m = p.Mmap(P, RW, MapFlags.Shared, f);
        p.Store(s, 1);
        p.Store(m, 2);
        var c = p.Fork();
        c.Store(s, 11);
        c.Store(m, 12);
        Assert.That(p.Load<int>(s), Is.EqualTo(11));
        Assert.That(p.Load<int>(m), Is.EqualTo(12));
        Assert.That(c.Mm.RssFile, Is.EqualTo(2));
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void Thp_ChildWrite_SplitsAndCopiesOnePage_ParentKeepsItsData()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        p.Madvise(a, Huge, Advice.HugePage);
        Fill(p, a, 4);
        var c = p.Fork();
        Assert.That(c.Mm.EntryAt(a).IsHuge, Is.True);
        c.Store(a + P, 5);
        Assert.That(c.Load<int>(a + P), Is.EqualTo(5));
        Assert.That(p.Load<int>(a + P), Is.EqualTo(1001));
        AssertFilled(c, a, 1);
        AssertFilled(p, a, 4);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void HugeTlbPrivate_ChildWriteCopiesTheWholePage()
    {
        using var machine = NewMachine(hugeTlbPages: 2);
        var p = machine.CreateProcess("app");
        ulong h = p.Mmap(Huge, RW, PrivAnon | MapFlags.HugeTlb);
        p.Store(h + 8, 1);
        var c = p.Fork();
        c.Store(h + 8, 2);
        Assert.That(p.Load<int>(h + 8), Is.EqualTo(1));
        Assert.That(c.Load<int>(h + 8), Is.EqualTo(2));
        Assert.That(machine.HugeTlbFreePages, Is.Zero);
        machine.CheckInvariants();
        ExitAll(machine);
        Assert.That(machine.HugeTlbFreePages, Is.EqualTo(2));
    }

    // Reference D "fork": PROTECTION_PAGE on the parent over the whole source VMA of a COW mapping with anonymous pages.
    [Test]
    public void Event_Fork_RaisesProtectionPageOverTheWholeCowVma()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(8 * P, RW, PrivAnon);
        p.Store(a + 3 * P, 1);
        using var rec = NotifierRecorder.Attach(p.Mm);
        var c = p.Fork();
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.ProtectionPage, a, a + 8 * P) }));
        machine.CheckInvariants();
        rec.Dispose();
        c.Exit();
    }

    // Reference D "fork": only COW mappings that need copying — shared and never-written mappings raise nothing.
    [Test]
    public void Event_Fork_OfSharedOrNeverWrittenMappings_RaisesNothing()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(2 * P);
        ulong s = p.Mmap(2 * P, RW, SharedAnon);
        ulong m = p.Mmap(2 * P, RW, MapFlags.Shared, f);
        ulong untouched = p.Mmap(2 * P, RW, PrivAnon);
        ulong readOnly = p.Mmap(2 * P, RW, PrivAnon);
        p.Store(s, 1);
        p.Store(m, 2);
        Assert.That(p.Load<int>(readOnly), Is.Zero);   // zero page only: no anon_vma
        Assert.That(untouched, Is.Not.Zero);
        using var rec = NotifierRecorder.Attach(p.Mm);
        var c = p.Fork();
        Assert.That(rec.Events, Is.Empty);
        Assert.That(c.Load<int>(s), Is.EqualTo(1));
        machine.CheckInvariants();
        rec.Dispose();
        ExitAll(machine, f);
    }

    // Reference D "COW write fault (wp_page_copy)": CLEAR one page — in the process that writes.
    [Test]
    public void Event_CowWriteAfterFork_RaisesClearOfOnePage()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        var c = p.Fork();
        using var rec = NotifierRecorder.Attach(p.Mm);
        using var crec = NotifierRecorder.Attach(c.Mm);
        p.Store(a + 2 * P + 4, 9);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a + 2 * P, a + 3 * P) }));
        Assert.That(crec.Events, Is.Empty);
        c.Store(a, 1);
        Assert.That(crec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a, a + P) }));
        machine.CheckInvariants();
        rec.Dispose();
        crec.Dispose();
        ExitAll(machine);
    }
}
