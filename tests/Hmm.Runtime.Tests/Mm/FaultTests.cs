using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>CPU faults: zero page, fresh pages, RSS, page-crossing accesses, and their events (reference D fault rows).</summary>
public class FaultTests
{
    [Test]
    public void ReadMapsTheZeroPage_WriteMapsAFreshPage_RssCountsOnlyWrites()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Assert.That(p.Load<long>(a), Is.Zero);
        var z = p.Mm.EntryAt(a);
        Assert.That(z.Kind, Is.EqualTo(PteKind.Present));
        Assert.That(z.IsWritable, Is.False);
        Assert.That(z.Pfn, Is.EqualTo(Machine.ZeroPfn));
        Assert.That(p.Mm.RssAnon, Is.Zero);
        Assert.That(machine.UsedPages, Is.Zero);
        p.Store(a, 1L);
        var e = p.Mm.EntryAt(a);
        Assert.That(e.IsWritable && e.IsDirty, Is.True);
        Assert.That(e.Pfn, Is.Not.EqualTo(Machine.ZeroPfn));
        Assert.That(p.Mm.RssAnon, Is.EqualTo(1));
        Assert.That(machine.UsedPages, Is.EqualTo(1));
        machine.CheckInvariants();
    }

    [Test]
    public void AccessCrossingAPageBoundary_TouchesBothPages()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        var data = Enumerable.Range(1, 64).Select(i => (byte)i).ToArray();
        p.Write(a + P - 32, data);
        var back = new byte[64];
        p.Read(a + P - 32, back);
        Assert.That(back, Is.EqualTo(data));
        Assert.That(p.Mm.RssAnon, Is.EqualTo(2));
        machine.CheckInvariants();
    }

    [Test]
    public void AccessCrossingIntoUnmappedPage_IsSegfaultAtTheSecondPage()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        p.Munmap(a + P, P);
        var e = Assert.Throws<SegmentationFault>(() => p.Store(a + P - 4, 1L))!;
        Assert.That(e.Address, Is.EqualTo(a + P));
        machine.CheckInvariants();
    }

    // Reference D "hmm_range_fault": pure read faults on none PTEs raise no invalidation (same for CPU read faults).
    [Test]
    public void Event_ReadFaultOnEmptyPte_RaisesNothing_FirstWriteToNonePteNeither()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        using var rec = NotifierRecorder.Attach(p.Mm);
        Assert.That(p.Load<int>(a), Is.Zero);
        p.Store(a + P, 1);
        Assert.That(rec.Events, Is.Empty);
        machine.CheckInvariants();
    }

    // Reference D "COW write fault (wp_page_copy)": writing over the zero page replaces it → CLEAR one page.
    [Test]
    public void Event_WriteToZeroPage_RaisesClearOfOnePage()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Assert.That(p.Load<int>(a + 2 * P), Is.Zero);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Store(a + 2 * P + 100, 5);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a + 2 * P, a + 3 * P) }));
        Assert.That(p.Load<int>(a + 2 * P + 100), Is.EqualTo(5));
        machine.CheckInvariants();
    }

    // Reference D "COW write fault": a private file page written for the first time after a read is copied → CLEAR one page.
    [Test]
    public void Event_WriteToReadMappedPrivateFilePage_RaisesClearOfOnePage()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(2 * P);
        ulong m = p.Mmap(2 * P, RW, MapFlags.Private, f);
        Assert.That(p.Load<int>(m + P), Is.Zero);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Store(m + P, 1);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, m + P, m + 2 * P) }));
        Assert.That(p.Mm.RssFile, Is.Zero);
        Assert.That(p.Mm.RssAnon, Is.EqualTo(1));
        machine.CheckInvariants();
        rec.Dispose();
        ExitAll(machine, f);
    }

    // Reference D: a write to an exclusive page only needs the write bit back (reuse) — no page replaced, no event.
    [Test]
    public void Event_WriteReusingAnExclusivePage_RaisesNothing()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, PrivAnon);
        p.Store(a, 1);
        // A read-only entry of a page nobody else holds: shared at fork, the child gone. (An
        // mprotect round trip no longer leaves one: change_protection upgrades an exclusive
        // anonymous page at once, as Linux does.)
        p.Fork().Exit();
        Assert.That(p.Mm.EntryAt(a).IsWritable, Is.False);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Store(a, 2);
        Assert.That(rec.Events, Is.Empty);
        Assert.That(p.Mm.EntryAt(a).IsWritable, Is.True);
        machine.CheckInvariants();
    }

    [Test]
    public void SharedFileWriteFault_AfterReadFault_MakesTheSamePageWritable()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(P);
        ulong m = p.Mmap(P, RW, MapFlags.Shared, f);
        Assert.That(p.Load<int>(m), Is.Zero);
        var before = p.Mm.EntryAt(m);
        Assert.That(before.IsWritable, Is.False);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Store(m, 3);
        Assert.That(p.Mm.EntryAt(m).Pfn, Is.EqualTo(before.Pfn));
        Assert.That(rec.Events, Is.Empty);
        machine.CheckInvariants();
        rec.Dispose();
        ExitAll(machine, f);
    }
}
