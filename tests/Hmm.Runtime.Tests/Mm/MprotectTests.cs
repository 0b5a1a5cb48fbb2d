using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>mprotect: VMA splits and merges, enforcement, data kept, and its events (reference D "mprotect").</summary>
public class MprotectTests
{
    [Test]
    public void Middle_SplitsIntoThree_RestoringMergesBack()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(6 * P, RW, PrivAnon);
        Fill(p, a, 6);
        p.Mprotect(a + 2 * P, 2 * P, Prot.Read);
        var layout = Layout(p);
        Assert.That(layout.Select(v => (v.Start, v.End)), Is.EqualTo(new[] { (a, a + 2 * P), (a + 2 * P, a + 4 * P), (a + 4 * P, a + 6 * P) }));
        Assert.That(layout[1].Flags & VmFlags.AccessMask, Is.EqualTo(VmFlags.Read));
        Assert.That(layout[0].Flags & VmFlags.AccessMask, Is.EqualTo(VmFlags.Read | VmFlags.Write));
        AssertFilled(p, a, 6);
        Assert.Throws<SegmentationFault>(() => p.Store(a + 3 * P, 1));
        Assert.That(p.Mm.EntryAt(a + 2 * P).IsWritable, Is.False, "the PTE lost write");
        p.Store(a + P, 5);
        p.Mprotect(a + 2 * P, 2 * P, RW);
        Assert.That(Layout(p), Has.Length.EqualTo(1), "same flags again → merged");
        p.Store(a + 3 * P, 77);
        Assert.That(p.Load<int>(a + 3 * P), Is.EqualTo(77));
        Assert.That(p.Mm.RssAnon, Is.EqualTo(6), "write after upgrade reuses the exclusive page");
        machine.CheckInvariants();
    }

    [Test]
    public void ProtNone_ForbidsReads_AndRestoringKeepsTheData()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        p.Mprotect(a, 2 * P, Prot.None);
        Assert.Throws<SegmentationFault>(() => p.Load<int>(a));
        Assert.Throws<SegmentationFault>(() => p.Store(a + P, 1));
        Assert.That(p.Mm.EntryAt(a).IsProtNone, Is.True);
        p.Mprotect(a, 2 * P, Prot.Read);
        AssertFilled(p, a, 2);
        Assert.Throws<SegmentationFault>(() => p.Store(a, 1));
        machine.CheckInvariants();
    }

    [Test]
    public void AcrossTwoVmas_ChangesBoth()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(2 * P);
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        ulong m = p.Mmap(2 * P, RW, MapFlags.Shared | MapFlags.Fixed, f, addr: a + 2 * P);
        p.Mprotect(a + P, 2 * P, Prot.Read);
        var layout = Layout(p);
        Assert.That(layout.Select(v => (v.Start, v.End, v.Flags & VmFlags.AccessMask)), Is.EqualTo(new[]
        {
            (a, a + P, VmFlags.Read | VmFlags.Write),
            (a + P, a + 2 * P, VmFlags.Read),
            (m, m + P, VmFlags.Read),
            (m + P, m + 2 * P, VmFlags.Read | VmFlags.Write),
        }));
        Assert.Throws<SegmentationFault>(() => p.Store(m, 1));
        p.Store(m + P, 1);
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    // Reference D "mprotect": PROTECTION_VMA, one per VMA sub-range, from the first populated PUD to the end of the piece.
    [Test]
    public void Event_Mprotect_RaisesProtectionVmaPerVmaPiece()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(6 * P, RW, PrivAnon);
        p.Mprotect(a + 3 * P, 3 * P, Prot.Read | Prot.Exec);
        p.Store(a, 1);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mprotect(a + P, 4 * P, Prot.Read);
        Assert.That(rec.Events, Is.EqualTo(new[]
        {
            Ev(NotifyEvent.ProtectionVma, a + P, a + 3 * P),
            Ev(NotifyEvent.ProtectionVma, a + 3 * P, a + 5 * P),
        }));
        machine.CheckInvariants();
    }

    // Reference D "mprotect": "any change, up or down" — granting write also raises PROTECTION_VMA.
    [Test]
    public void Event_MprotectUpgrade_RaisesProtectionVma()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, Prot.Read, PrivAnon);
        Assert.That(p.Load<int>(a), Is.Zero);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mprotect(a, 2 * P, RW);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.ProtectionVma, a, a + 2 * P) }));
        machine.CheckInvariants();
    }

    // Reference D "mprotect": fully unpopulated ranges produce no callback.
    [Test]
    public void Event_MprotectOfUnpopulatedRange_RaisesNothing()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mprotect(a, 4 * P, Prot.Read);
        Assert.That(rec.Events, Is.Empty);
        Assert.That(Layout(p)[0].Flags & VmFlags.AccessMask, Is.EqualTo(VmFlags.Read), "the VMA still changed");
        machine.CheckInvariants();
    }

    // Reference D "mprotect": a no-op change (same protection) touches nothing and raises nothing.
    [Test]
    public void Event_NoOpMprotect_RaisesNothing_AndKeepsOneVma()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        var before = Layout(p);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mprotect(a + P, 2 * P, RW);
        Assert.That(rec.Events, Is.Empty);
        Assert.That(Layout(p), Is.EqualTo(before));
        Assert.That(p.Mm.EntryAt(a + P).IsWritable, Is.True);
        machine.CheckInvariants();
    }
}
