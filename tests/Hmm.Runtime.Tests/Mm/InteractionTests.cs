using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>Operations combined: THP and fork, mremap of THPs, shared memory lifetimes, hugetlb sharing.</summary>
public class InteractionTests
{
    [Test]
    public void Thp_ParentWriteAfterFork_ChildKeepsTheOldData()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        p.Madvise(a, Huge, Advice.HugePage);
        Fill(p, a, 4);
        var c = p.Fork();
        p.Store(a + 2 * P, 9);
        Assert.That(c.Load<int>(a + 2 * P), Is.EqualTo(1002));
        Assert.That(p.Load<int>(a + 2 * P), Is.EqualTo(9));
        c.Store(a + 3 * P, 8);
        Assert.That(p.Load<int>(a + 3 * P), Is.EqualTo(1003));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void Thp_AfterTheChildExits_ParentWriteReusesThePmd()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        p.Madvise(a, Huge, Advice.HugePage);
        Fill(p, a, 2);
        var c = p.Fork();
        c.Exit();
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Store(a, 5);
        Assert.That(p.Mm.EntryAt(a).IsHuge && p.Mm.EntryAt(a).IsWritable, Is.True);
        Assert.That(rec.Events, Is.Empty);
        Assert.That(machine.UsedPages, Is.EqualTo(512));
        machine.CheckInvariants();
        rec.Dispose();
        ExitAll(machine);
    }

    // Reference D "mremap" + "THP split": moving a THP to a non-aligned address splits it (CLEAR) inside the move's UNMAP.
    [Test]
    public void Event_MremapOfThpToUnalignedAddress_SplitsAndKeepsData()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        p.Madvise(a, Huge, Advice.HugePage);
        Fill(p, a, 4);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        ulong target = a - 4 * Huge + P;
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mremap(a, Huge, Huge, MremapFlags.MayMove | MremapFlags.Fixed, target);
        Assert.That(rec.Events, Is.EqualTo(new[]
        {
            Ev(NotifyEvent.Unmap, a, a + Huge),
            Ev(NotifyEvent.Clear, a, a + Huge),
            Ev(NotifyEvent.Unmap, a, a + Huge),
        }));
        AssertFilled(p, target, 4);
        Assert.That(p.Mm.EntryAt(target).IsHuge, Is.False);
        Assert.That(p.Mm.RssAnon, Is.EqualTo(512));
        machine.CheckInvariants();
        rec.Dispose();
        ExitAll(machine);
    }

    [Test]
    public void SharedAnon_PartlyUnmapped_KeepsTheRest_FreedWithTheLastPiece()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong s = p.Mmap(4 * P, RW, SharedAnon);
        Fill(p, s, 4);
        p.Munmap(s + P, 2 * P);
        Assert.That(p.Load<int>(s), Is.EqualTo(1000));
        Assert.That(p.Load<int>(s + 3 * P), Is.EqualTo(1003));
        p.Munmap(s, P);
        Assert.That(machine.UsedPages, Is.EqualTo(4), "the shmem object lives while a piece maps it");
        p.Munmap(s + 3 * P, P);
        Assert.That(machine.UsedPages, Is.Zero);
        machine.CheckInvariants();
    }

    [Test]
    public void SharedAnon_MovedByMremap_StillSharedWithAForkChild()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong s = p.Mmap(2 * P, RW, SharedAnon);
        Fill(p, s, 2);
        var c = p.Fork();
        ulong moved = p.Mremap(s, 2 * P, 2 * P, MremapFlags.MayMove | MremapFlags.Fixed, s - 32 * P);
        c.Store(s + P, 42);
        Assert.That(p.Load<int>(moved + P), Is.EqualTo(42));
        Assert.That(p.Load<int>(moved), Is.EqualTo(1000));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void SharedHugeTlb_IsSharedWithTheChild_AndReturnsToThePool()
    {
        using var machine = NewMachine(hugeTlbPages: 1);
        var p = machine.CreateProcess("app");
        ulong h = p.Mmap(Huge, RW, SharedAnon | MapFlags.HugeTlb);
        p.Store(h, 1);
        var c = p.Fork();
        c.Store(h + P, 2);
        Assert.That(p.Load<int>(h + P), Is.EqualTo(2));
        Assert.That(machine.HugeTlbFreePages, Is.Zero);
        machine.CheckInvariants();
        ExitAll(machine);
        Assert.That(machine.HugeTlbFreePages, Is.EqualTo(1));
    }

    [Test]
    public void Collapse_OfPagesSharedWithAChild_IsRefused_Einval_NoEvent()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        Fill(p, a, 4);
        var c = p.Fork();
        using var rec = NotifierRecorder.Attach(p.Mm);
        // Every parent PTE is write-protected after fork: SCAN_PAGE_RO → EINVAL (madvise_collapse_errno).
        Assert.That(Assert.Throws<ErrnoException>(() => p.Madvise(a, Huge, Advice.Collapse))!.Errno, Is.EqualTo(Errno.EINVAL));
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.False);
        Assert.That(rec.Events, Is.Empty);
        AssertFilled(c, a, 4);
        machine.CheckInvariants();
        rec.Dispose();
        ExitAll(machine);
    }

    [Test]
    public void Reclaim_KeepsLazyFreePagesSharedWithAChild()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        var c = p.Fork();
        p.Madvise(a, 2 * P, Advice.Free);
        Assert.That(machine.Reclaim(), Is.Zero);
        AssertFilled(p, a, 2);
        AssertFilled(c, a, 2);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void Free_OfAWholeThp_ThenReclaim_FreesIt()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        p.Madvise(a, Huge, Advice.HugePage);
        Fill(p, a, 2);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Madvise(a, Huge, Advice.Free);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a, a + Huge) }));
        AssertFilled(p, a, 2);
        p.Store(a + P, 5);
        Assert.That(machine.Reclaim(), Is.EqualTo(511));
        Assert.That(p.Load<int>(a), Is.Zero);
        Assert.That(p.Load<int>(a + P), Is.EqualTo(5));
        machine.CheckInvariants();
        rec.Dispose();
        ExitAll(machine);
    }

    [Test]
    public void Mprotect_OfPartOfAThp_SplitsIt_KeepsData_EnforcesTheNewProtection()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        p.Madvise(a, Huge, Advice.HugePage);
        Fill(p, a, 4);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mprotect(a + P, P, Prot.Read);
        Assert.That(rec.Events, Is.EqualTo(new[]
        {
            Ev(NotifyEvent.Clear, a, a + Huge),
            Ev(NotifyEvent.ProtectionVma, a + P, a + 2 * P),
        }));
        AssertFilled(p, a, 4);
        Assert.Throws<SegmentationFault>(() => p.Store(a + P, 1));
        p.Store(a + 2 * P, 1);
        machine.CheckInvariants();
        rec.Dispose();
        ExitAll(machine);
    }

    [Test]
    public void PrivateFileMapping_Fork_ChildCowAndFileUnchanged()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(2 * P);
        f.Pwrite(0, BitConverter.GetBytes(3));
        ulong m = p.Mmap(2 * P, RW, MapFlags.Private, f);
        p.Store(m + P, 4);
        var c = p.Fork();
        c.Store(m + P, 5);
        c.Store(m, 6);
        Assert.That(p.Load<int>(m + P), Is.EqualTo(4));
        Assert.That(p.Load<int>(m), Is.EqualTo(3));
        var buf = new byte[4];
        f.Pread(0, buf);
        Assert.That(BitConverter.ToInt32(buf), Is.EqualTo(3));
        machine.CheckInvariants();
        ExitAll(machine, f);
    }
}
