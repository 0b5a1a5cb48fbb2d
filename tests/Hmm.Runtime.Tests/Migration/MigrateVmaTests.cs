using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Migration;

/// <summary>migrate_vma setup/pages/finalize (reference A.9, B.6, C MIG-R01/R02/R04/R07/R08, D migrate rows, H.8).</summary>
public class MigrateVmaTests
{
    private const ulong M = MigratePfn.Migrate, V = MigratePfn.Valid, W = MigratePfn.Write, C = MigratePfn.Compound;

    private static RecordedEvent Mig(ulong s, ulong e, object? owner) => new(NotifyEvent.Migrate, s, e, true, owner);

    private static MigrateVma Args(Process p, ulong start, int pages, MigrateSelect flags, object? owner) => new()
    {
        Vma = p.Mm.FindVma(start),
        Start = start,
        End = start + (ulong)pages * P,
        Src = new ulong[pages],
        Dst = new ulong[pages],
        Flags = flags,
        PgmapOwner = owner,
    };

    /// <summary>Setup then (nothing migrated) finalize, under the mmap lock; returns the src words after setup.</summary>
    private static ulong[] Probe(Process p, ulong start, int pages, MigrateSelect flags, object? owner)
    {
        p.Mm.MmapLock.ReadLock();
        try
        {
            var args = Args(p, start, pages, flags, owner);
            Assert.That(MigrateVma.Setup(args), Is.EqualTo(Errno.Ok));
            var src = args.Src.ToArray();
            MigrateVma.Pages(args);
            MigrateVma.Finalize(args);
            return src;
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
    }

    private static ulong Word(ulong pfn, ulong flags) => MigratePfn.FromPfn(pfn) | flags;

    // B.6 / D: setup collects inside MIGRATE (owner = pgmap_owner, [start, end)); pages populating holes raises a
    // second MIGRATE from the first hole to end; holes need no SELECT flag; populated pages carry VALID|WRITE.
    [Test]
    public void ToDevice_MigrateEventsWithOwner_HolesPopulated_DataIntact()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 2);
        ulong pfn0 = p.Mm.EntryAt(a).Pfn, pfn1 = p.Mm.EntryAt(a + P).Pfn;
        using var rec = NotifierRecorder.Attach(p.Mm);
        Assert.That(dev.MigrateToDevice(p, a, 4), Is.EqualTo(4));
        Assert.That(rec.Events, Is.EqualTo(new[] { Mig(a, a + 4 * P, dev), Mig(a + 2 * P, a + 4 * P, dev) }));
        Assert.That(dev.SrcAfterSetup, Is.EqualTo(new[] { Word(pfn0, M | W), Word(pfn1, M | W), M, M }));
        for (int i = 0; i < 4; i++)
        {
            var e = p.Mm.EntryAt(a + (ulong)i * P);
            Assert.That(e.Kind, Is.EqualTo(PteKind.DevicePrivate), $"page {i}");
            Assert.That(e.IsWritable, Is.True, "writable iff VM_WRITE");
        }
        Assert.That(p.Mm.RssAnon, Is.EqualTo(4));
        rec.Clear();
        AssertFilled(p, a, 2);
        AssertZero(p, a + 2 * P, 2);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // B.6 collect: the zero page is collected (MIGRATE, no pfn) with SELECT_SYSTEM; inserted entries are writable iff VM_WRITE.
    [Test]
    public void ZeroPages_Populated_ReadOnlyVmaGetsReadOnlyDeviceEntries()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, Prot.Read, PrivAnon);
        Assert.That(p.Load<int>(a), Is.Zero);
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(dev.MigrateToDevice(p, a, 2), Is.EqualTo(2));
        Assert.That(dev.SrcAfterSetup, Is.EqualTo(new[] { M, M }));
        for (int i = 0; i < 2; i++)
        {
            var e = p.Mm.EntryAt(a + (ulong)i * P);
            Assert.That(e.Kind, Is.EqualTo(PteKind.DevicePrivate));
            Assert.That(e.IsWritable, Is.False);
        }
        AssertZero(p, a, 2);
        Assert.That(p.Mm.EntryAt(a).IsWritable, Is.False);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // A.9 SELECT flags / MIG-R07: system pages need SELECT_SYSTEM; device pages need their SELECT bit and a matching pgmap_owner.
    [Test]
    public void SelectFlags_PickOnlyTheIntendedSourceKinds()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var coh = new TestDevice(machine, DevicePageKind.Coherent, name: "coh");
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(6 * P, RW, PrivAnon);
        Fill(p, a, 6);
        Assert.That(dev.MigrateToDevice(p, a + 2 * P, 2), Is.EqualTo(2));
        Assert.That(coh.MigrateToDevice(p, a + 4 * P, 2), Is.EqualTo(2));
        var pfn = Enumerable.Range(0, 6).Select(i => p.Mm.EntryAt(a + (ulong)i * P).Pfn).ToArray();
        object other = new();

        Assert.That(Probe(p, a, 6, MigrateSelect.None, dev), Is.All.EqualTo(0UL));
        Assert.That(Probe(p, a, 6, MigrateSelect.System, dev), Is.EqualTo(new ulong[] { Word(pfn[0], M | W), Word(pfn[1], M | W), 0, 0, 0, 0 }));
        Assert.That(Probe(p, a, 6, MigrateSelect.DevicePrivate, dev), Is.EqualTo(new ulong[] { 0, 0, Word(pfn[2], M | W), Word(pfn[3], M | W), 0, 0 }));
        Assert.That(Probe(p, a, 6, MigrateSelect.DevicePrivate, other), Is.All.EqualTo(0UL), "another owner's private pages");
        Assert.That(Probe(p, a, 6, MigrateSelect.DeviceCoherent, coh), Is.EqualTo(new ulong[] { 0, 0, 0, 0, Word(pfn[4], M | W), Word(pfn[5], M | W) }));
        Assert.That(Probe(p, a, 6, MigrateSelect.DeviceCoherent, dev), Is.All.EqualTo(0UL), "coherent pages of another owner");
        Assert.That(Probe(p, a, 6, MigrateSelect.System | MigrateSelect.DevicePrivate | MigrateSelect.DeviceCoherent, other),
            Is.EqualTo(new ulong[] { Word(pfn[0], M | W), Word(pfn[1], M | W), 0, 0, 0, 0 }));
        for (int i = 0; i < 6; i++) Assert.That(p.Mm.EntryAt(a + (ulong)i * P).Pfn, Is.EqualTo(pfn[i]), "nothing moved without destinations");
        AssertFilled(p, a, 6);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        ExitAllAndCheckDevices(machine, coh);
    }

    // B.6 collect: a PMD-mapped THP with SELECT_COMPOUND and PMD-aligned range → one COMPOUND head, 511 zero placeholders;
    // it migrates as one unit to a device-private PMD, and comes back whole on a CPU fault.
    [Test]
    public void Thp_MigratesAsOneUnit_DevicePrivatePmd()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private) { Compound = true };
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 << 20, RW, PrivAnon);
        ulong t = (a + Huge - 1) & ~(Huge - 1);
        p.Madvise(t, Huge, Advice.HugePage);
        Fill(p, t, 512);
        var thp = p.Mm.EntryAt(t);
        Assert.That(thp.IsHuge, Is.True);
        Assert.That(dev.MigrateToDevice(p, t, 512), Is.EqualTo(512));
        Assert.That(dev.SrcAfterSetup[0], Is.EqualTo(Word(thp.Pfn, M | W | C)));
        Assert.That(dev.SrcAfterSetup.Skip(1), Is.All.EqualTo(0UL));
        Assert.That(dev.Allocations, Is.EqualTo(1));
        var e = p.Mm.EntryAt(t + 77 * P);
        Assert.That(e.Kind, Is.EqualTo(PteKind.DevicePrivate));
        Assert.That(e.IsHuge, Is.True);
        Assert.That(dev.Pgmap.FolioOrder(e.Pfn), Is.EqualTo(Page.PmdOrder));
        Assert.That(p.Load<int>(t + 300 * P), Is.EqualTo(1300));
        Assert.That(dev.MigrateToRamCalls, Is.EqualTo(1), "one fault brings the whole device folio back");
        Assert.That(p.Mm.EntryAt(t).IsHuge, Is.True);
        AssertFilled(p, t, 512);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // B.6 collect of a PMD-aligned hole with SELECT_COMPOUND: MIGRATE|COMPOUND head; a compound destination installs a device PMD.
    [Test]
    public void CompoundHole_PopulatedWithDevicePmd()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private) { Compound = true };
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 << 20, RW, PrivAnon);
        ulong t = (a + Huge - 1) & ~(Huge - 1);
        Assert.That(dev.MigrateToDevice(p, t, 512), Is.EqualTo(512));
        Assert.That(dev.SrcAfterSetup[0], Is.EqualTo(M | C));
        Assert.That(dev.SrcAfterSetup.Skip(1), Is.All.EqualTo(0UL));
        Assert.That(p.Mm.EntryAt(t).Kind, Is.EqualTo(PteKind.DevicePrivate));
        Assert.That(p.Mm.EntryAt(t).IsHuge, Is.True);
        Assert.That(p.Mm.RssAnon, Is.EqualTo(512));
        AssertZero(p, t, 512);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // B.6 pages: a compound source with base-page destinations (the large device allocation failed) migrates as 512 pages.
    [Test]
    public void Thp_LargeAllocationFails_FallsBackTo512Pages()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private) { Compound = true, FailAllocations = 1 };
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 << 20, RW, PrivAnon);
        ulong t = (a + Huge - 1) & ~(Huge - 1);
        p.Madvise(t, Huge, Advice.HugePage);
        Fill(p, t, 512);
        Assert.That(p.Mm.EntryAt(t).IsHuge, Is.True);
        Assert.That(dev.MigrateToDevice(p, t, 512), Is.EqualTo(512));
        Assert.That(dev.Allocations, Is.EqualTo(512));
        for (int i = 0; i < 512; i += 37)
        {
            var e = p.Mm.EntryAt(t + (ulong)i * P);
            Assert.That(e.Kind, Is.EqualTo(PteKind.DevicePrivate), $"page {i}");
            Assert.That(e.IsHuge, Is.False);
            Assert.That(dev.Pgmap.FolioOrder(e.Pfn), Is.Zero);
        }
        Assert.That(dev.MigrateToSystem(p, t, 512), Is.EqualTo(512));
        AssertFilled(p, t, 512);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // B.6 collect: migrating part of a THP splits the folio; the rest stays mapped by PTEs in system memory.
    [Test]
    public void PartialThp_SplitsTheFolio()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 << 20, RW, PrivAnon);
        ulong t = (a + Huge - 1) & ~(Huge - 1);
        p.Madvise(t, Huge, Advice.HugePage);
        Fill(p, t, 512);
        ulong head = p.Mm.EntryAt(t).Pfn;
        Assert.That(p.Mm.EntryAt(t).IsHuge, Is.True);
        using var rec = NotifierRecorder.Attach(p.Mm);
        Assert.That(dev.MigrateToDevice(p, t + 100 * P, 16), Is.EqualTo(16));
        Assert.That(rec.Events[0].Event, Is.EqualTo(NotifyEvent.Migrate));
        Assert.That(machine.Frames.Order(head), Is.Zero, "the folio was split");
        for (int i = 0; i < 512; i++)
        {
            var e = p.Mm.EntryAt(t + (ulong)i * P);
            Assert.That(e.IsHuge, Is.False);
            Assert.That(e.Kind, Is.EqualTo(i is >= 100 and < 116 ? PteKind.DevicePrivate : PteKind.Present), $"page {i}");
            if (e.Kind == PteKind.Present) Assert.That(e.Pfn, Is.EqualTo(head + (ulong)i));
        }
        AssertFilled(p, t, 512);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // B.6 collect: pages without an anonymous mapping (shared anonymous = shmem) are not migratable; holes there are not collected.
    [Test]
    public void SharedAnonymous_NotMigratable()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, SharedAnon);
        Fill(p, a, 2);
        Assert.That(dev.MigrateToDevice(p, a, 4), Is.Zero);
        Assert.That(dev.SrcAfterSetup, Is.All.EqualTo(0UL));
        Assert.That(dev.Allocations, Is.Zero);
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(p.Mm.EntryAt(a + 3 * P).Kind, Is.EqualTo(PteKind.None));
        AssertFilled(p, a, 2);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // B.6 unmap step / H.8: a page with an extra reference (refcount > mappings) is restored and its src zeroed.
    [Test]
    public void ExtraReferencedPage_NotCollected()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        ulong pfn = p.Mm.EntryAt(a).Pfn;
        machine.GetPage(pfn);
        Assert.That(dev.MigrateToDevice(p, a, 2), Is.EqualTo(1));
        Assert.That(dev.SrcAfterSetup[0], Is.Zero);
        Assert.That(dev.SrcAfterSetup[1] & M, Is.Not.Zero);
        var e = p.Mm.EntryAt(a);
        Assert.That(e.Kind, Is.EqualTo(PteKind.Present));
        Assert.That(e.Pfn, Is.EqualTo(pfn));
        Assert.That(e.IsWritable, Is.True);
        machine.PutPage(pfn);
        AssertFilled(p, a, 2);
        ExitAllAndCheckDevices(machine, dev);
    }

    // B.6 setup EINVAL: fault_page given but not device-private, or not locked (MIG-R08). Nothing happens (no event).
    [Test]
    public void FaultPage_NotDevicePrivateOrNotLocked_Einval()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        Assert.That(dev.MigrateToDevice(p, a + P, 1), Is.EqualTo(1));
        ulong sys = p.Mm.EntryAt(a).Pfn, devPfn = p.Mm.EntryAt(a + P).Pfn;
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mm.MmapLock.ReadLock();
        try
        {
            var args = Args(p, a, 2, MigrateSelect.DevicePrivate, dev);
            args.FaultPage = sys;
            Assert.That(MigrateVma.Setup(args), Is.EqualTo(Errno.EINVAL));
            args.FaultPage = devPfn;   // device-private but not locked
            Assert.That(MigrateVma.Setup(args), Is.EqualTo(Errno.EINVAL));
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        Assert.That(rec.Events, Is.Empty);
        AssertFilled(p, a, 2);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // Issue "bad input" / B.6 setup: a range crossing two VMAs, or running into a hole, or starting outside → EINVAL, no change.
    [Test]
    public void Setup_RangeCrossingVmasOrHole_EinvalAndNoChange()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(8 * P, RW, PrivAnon);
        p.Mprotect(a + 4 * P, 4 * P, Prot.Read);   // two VMAs: [a, a+4P) rw and [a+4P, a+8P) r
        p.Munmap(a + 6 * P, 2 * P);                // hole after a+6P
        Fill(p, a, 4);
        var before = Enumerable.Range(0, 6).Select(i => p.Mm.EntryAt(a + (ulong)i * P)).ToArray();
        long used = machine.UsedPages;
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mm.MmapLock.ReadLock();
        try
        {
            var cross = Args(p, a + 2 * P, 4, MigrateSelect.System, dev);
            Assert.That(MigrateVma.Setup(cross), Is.EqualTo(Errno.EINVAL), "crosses two VMAs");
            var hole = Args(p, a + 4 * P, 4, MigrateSelect.System, dev);
            Assert.That(MigrateVma.Setup(hole), Is.EqualTo(Errno.EINVAL), "runs into a hole");
            var outside = Args(p, a + 2 * P, 2, MigrateSelect.System, dev);
            outside.Vma = p.Mm.FindVma(a + 4 * P);
            Assert.That(MigrateVma.Setup(outside), Is.EqualTo(Errno.EINVAL), "start outside the given VMA");
            var empty = Args(p, a, 1, MigrateSelect.System, dev);
            empty.End = a;
            Assert.That(MigrateVma.Setup(empty), Is.EqualTo(Errno.EINVAL), "npages <= 0");
            var noVma = Args(p, a, 1, MigrateSelect.System, dev);
            noVma.Vma = null;
            Assert.That(MigrateVma.Setup(noVma), Is.EqualTo(Errno.EINVAL), "no vma");
            var shortArrays = Args(p, a, 4, MigrateSelect.System, dev);
            shortArrays.Src = new ulong[2];
            Assert.That(MigrateVma.Setup(shortArrays), Is.EqualTo(Errno.EINVAL), "src too short");
            // An EINVAL setup needs no finalize: disposing is fine.
            cross.Dispose();
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        Assert.That(rec.Events, Is.Empty);
        Assert.That(Enumerable.Range(0, 6).Select(i => p.Mm.EntryAt(a + (ulong)i * P)).ToArray(), Is.EqualTo(before));
        Assert.That(machine.UsedPages, Is.EqualTo(used));
        Assert.That(dev.Allocations, Is.Zero);
        AssertFilled(p, a, 4);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // Issue "device memory exhausted": the pages that could not move stay where they were, readable; src words without MIGRATE say which.
    [Test]
    public void DeviceAllocationsFail_UnmovedPagesStay_SrcSaysWhich()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private) { FailAllocations = 3 };
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(8 * P, RW, PrivAnon);
        Fill(p, a, 8);
        var pfn = Enumerable.Range(0, 8).Select(i => p.Mm.EntryAt(a + (ulong)i * P).Pfn).ToArray();
        Assert.That(dev.MigrateToDevice(p, a, 8), Is.EqualTo(5));
        for (int i = 0; i < 8; i++)
        {
            bool moved = (dev.SrcAfterPages[i] & M) != 0;
            Assert.That(moved, Is.EqualTo(i >= 3), $"page {i}");
            Assert.That(MigratePfn.ToPfn(dev.SrcAfterPages[i]), Is.EqualTo(pfn[i]));
            var e = p.Mm.EntryAt(a + (ulong)i * P);
            Assert.That(e.Kind, Is.EqualTo(moved ? PteKind.DevicePrivate : PteKind.Present));
            if (!moved) { Assert.That(e.Pfn, Is.EqualTo(pfn[i])); Assert.That(e.IsWritable, Is.True); }
        }
        AssertFilled(p, a, 8);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // Same, with the device really full (2 MiB = 512 pages): the overflow stays in system memory, readable.
    [Test]
    public void DeviceMemoryFull_OverflowStaysInSystemMemory()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private, bytes: 2 << 20);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(520 * P, RW, PrivAnon);
        Fill(p, a, 520);
        Assert.That(dev.MigrateToDevice(p, a, 520), Is.EqualTo(512));
        Assert.That(dev.FreePages, Is.Zero);
        Assert.That(dev.SrcAfterPages.Length, Is.EqualTo(8));
        Assert.That(dev.SrcAfterPages.Select(w => w & M), Is.All.EqualTo(0UL));
        Assert.That(dev.SrcAfterPages.Select(MigratePfn.IsValid), Is.All.True);
        Assert.That(p.Mm.EntryAt(a + 511 * P).Kind, Is.EqualTo(PteKind.DevicePrivate));
        Assert.That(p.Mm.EntryAt(a + 512 * P).Kind, Is.EqualTo(PteKind.Present));
        AssertFilled(p, a, 520);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }
}
