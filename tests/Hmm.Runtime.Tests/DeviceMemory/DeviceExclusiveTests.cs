using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.DeviceMemory;

/// <summary>make_device_exclusive (reference A.10, B.8, B.7 exclusive row, C EXC-R01/HMM-R20, D, H.6).</summary>
public class DeviceExclusiveTests
{
    private static RecordedEvent Excl(ulong s, object owner) => new(NotifyEvent.Exclusive, s, s + P, true, owner);

    private static Errno Make(Process p, ulong addr, object owner, out ulong pfn)
    {
        p.Mm.MmapLock.ReadLock();
        try
        {
            var e = DeviceExclusive.Make(p.Mm, addr, owner, out var page);
            pfn = page.Pfn;
            // EXC-R01: the driver programs its atomic mapping here, then unlocks and puts the folio.
            page.Dispose();
            return e;
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
    }

    // B.8: the CPU entry becomes device-exclusive inside an EXCLUSIVE invalidation owned by the caller; B.7/H.6: a CPU
    // access restores the original entry with CLEAR (owner none) and the data is intact.
    [TestCase(false)]
    [TestCase(true)]
    public void Make_EntryBecomesExclusive_CpuAccessRestoresWithClear(bool write)
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        ulong pfn = p.Mm.EntryAt(a + P).Pfn;
        object owner = new();
        using var rec = NotifierRecorder.Attach(p.Mm);
        Assert.That(Make(p, a + P + 100, owner, out ulong got), Is.EqualTo(Errno.Ok));
        Assert.That(got, Is.EqualTo(pfn), "the page stays in system RAM");
        Assert.That(rec.Events, Is.EqualTo(new[] { Excl(a + P, owner) }));
        var e = p.Mm.EntryAt(a + P);
        Assert.That(e.Kind, Is.EqualTo(PteKind.DeviceExclusive));
        Assert.That(e.Pfn, Is.EqualTo(pfn));
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present), "one page only");
        machine.CheckInvariants();

        rec.Clear();
        if (write) p.Store(a + P + 4, 9); else Assert.That(p.Load<int>(a + P), Is.EqualTo(1001));
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a + P, a + 2 * P) }));
        e = p.Mm.EntryAt(a + P);
        Assert.That(e.Kind, Is.EqualTo(PteKind.Present));
        Assert.That(e.Pfn, Is.EqualTo(pfn));
        Assert.That(e.IsWritable, Is.True);
        AssertFilled(p, a, 4);
        if (write) Assert.That(p.Load<int>(a + P + 4), Is.EqualTo(9));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // D fork: exclusive entries in the parent are restored first, then copied as normal present entries (COW). The
    // restore (try_restore_exclusive_pte) runs inside copy_page_range's PROTECTION_PAGE window and raises no event of its own.
    [Test]
    public void Fork_RestoresExclusiveEntriesInParentBeforeCopying()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        object owner = new();
        Assert.That(Make(p, a + 2 * P, owner, out ulong pfn), Is.EqualTo(Errno.Ok));
        using var rec = NotifierRecorder.Attach(p.Mm);
        var child = p.Fork();
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.ProtectionPage, a, a + 4 * P) }));
        var pe = p.Mm.EntryAt(a + 2 * P);
        var ce = child.Mm.EntryAt(a + 2 * P);
        Assert.That(pe.Kind, Is.EqualTo(PteKind.Present));
        Assert.That(ce.Kind, Is.EqualTo(PteKind.Present));
        Assert.That(pe.Pfn, Is.EqualTo(pfn));
        Assert.That(ce.Pfn, Is.EqualTo(pfn));
        Assert.That(pe.IsWritable || ce.IsWritable, Is.False, "COW applies");
        child.Store(a + 2 * P, 5);
        AssertFilled(p, a, 4);
        Assert.That(child.Load<int>(a + 2 * P), Is.EqualTo(5));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // B.8: a second device taking the page first restores the other device's entry (CLEAR), then EXCLUSIVE with its own owner.
    [Test]
    public void Make_OverAnotherDevicesExclusiveEntry_RestoresThenConverts()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, PrivAnon);
        Fill(p, a, 1);
        object first = new(), second = new();
        Assert.That(Make(p, a, first, out ulong pfn), Is.EqualTo(Errno.Ok));
        using var rec = NotifierRecorder.Attach(p.Mm);
        Assert.That(Make(p, a, second, out ulong pfn2), Is.EqualTo(Errno.Ok));
        Assert.That(pfn2, Is.EqualTo(pfn));
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a, a + P), Excl(a, second) }));
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.DeviceExclusive));
        AssertFilled(p, a, 1);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // B.8 FOLL_SPLIT_PMD: a THP is split before one of its pages becomes exclusive.
    [Test]
    public void Make_OnThp_SplitsThePmdFirst()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong m = p.Mmap(4 << 20, RW, PrivAnon);
        ulong t = (m + Huge - 1) & ~(Huge - 1);
        p.Madvise(t, Huge, Advice.HugePage);
        Fill(p, t, 512);
        Assert.That(p.Mm.EntryAt(t).IsHuge, Is.True);
        object owner = new();
        using var rec = NotifierRecorder.Attach(p.Mm);
        Assert.That(Make(p, t + 7 * P, owner, out _), Is.EqualTo(Errno.Ok));
        Assert.That(rec.Events.Last(), Is.EqualTo(Excl(t + 7 * P, owner)));
        Assert.That(p.Mm.EntryAt(t + 7 * P).Kind, Is.EqualTo(PteKind.DeviceExclusive));
        Assert.That(p.Mm.EntryAt(t + 7 * P).IsHuge, Is.False);
        Assert.That(p.Mm.EntryAt(t).IsHuge, Is.False);
        Assert.That(p.Mm.EntryAt(t).Kind, Is.EqualTo(PteKind.Present));
        AssertFilled(p, t, 512);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // B.8: non-anonymous memory → EOPNOTSUPP (shared anonymous = shmem, shared file); read-only VMA or no VMA → EFAULT. No event.
    [Test]
    public void Make_SharedOrFileMemory_Eopnotsupp_ReadOnly_Efault()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong shared = p.Mmap(P, RW, SharedAnon);
        Fill(p, shared, 1);
        using var file = machine.CreateFile(P);
        ulong f = p.Mmap(P, RW, MapFlags.Shared, file);
        p.Store(f, 1);
        ulong ro = p.Mmap(P, Prot.Read, PrivAnon);
        ulong gone = p.Mmap(P, RW, PrivAnon);
        p.Munmap(gone, P);
        object owner = new();
        using var rec = NotifierRecorder.Attach(p.Mm);
        Assert.That(Make(p, shared, owner, out _), Is.EqualTo(Errno.EOPNOTSUPP));
        Assert.That(Make(p, f, owner, out _), Is.EqualTo(Errno.EOPNOTSUPP));
        Assert.That(Make(p, ro, owner, out _), Is.EqualTo(Errno.EFAULT));
        Assert.That(Make(p, gone, owner, out _), Is.EqualTo(Errno.EFAULT));
        Assert.That(rec.Events.Where(e => e.Event == NotifyEvent.Exclusive), Is.Empty);
        Assert.That(p.Mm.EntryAt(shared).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(p.Mm.EntryAt(f).Kind, Is.EqualTo(PteKind.Present));
        AssertFilled(p, shared, 1);
        Assert.That(p.Load<int>(f), Is.EqualTo(1));
        machine.CheckInvariants();
        foreach (var q in machine.Processes) q.Exit();
        file.Dispose();
        machine.CheckInvariants();
        Assert.That(machine.UsedPages, Is.Zero);
    }

    // EXC-R01: make_device_exclusive requires the mmap lock.
    [Test]
    public void Make_WithoutMmapLock_ExcR01()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, PrivAnon);
        Fill(p, a, 1);
        var ex = Assert.Throws<KernelBugException>(() => DeviceExclusive.Make(p.Mm, a, new object(), out _));
        Assert.That(ex!.Message, Does.Contain("EXC-R01"));
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // D munmap: an exclusive entry's page is freed normally; B.6 collect: exclusive entries are not migrated (src 0).
    [Test]
    public void ExclusiveEntry_NotCollectedByMigration_FreedByMunmap()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        Assert.That(Make(p, a, dev, out _), Is.EqualTo(Errno.Ok));
        long used = machine.UsedPages;
        Assert.That(dev.MigrateToDevice(p, a, 1), Is.Zero);
        Assert.That(dev.SrcAfterSetup, Is.EqualTo(new ulong[] { 0 }));
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.DeviceExclusive));
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Munmap(a, 2 * P);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Unmap, a, a + 2 * P) }));
        Assert.That(machine.UsedPages, Is.EqualTo(used - 2));
        machine.CheckInvariants();
        ExitAll(machine);
    }
}
