using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.DeviceMemory;

/// <summary>
/// Device-private entries under CPU access and each mm operation (reference B.7, D "Device-private (and
/// exclusive) entries under each operation", H.7, A.11).
/// </summary>
public class DevicePrivateEntryTests
{
    private static RecordedEvent Mig(ulong s, ulong e, object owner) => new(NotifyEvent.Migrate, s, e, true, owner);

    private static (Machine, TestDevice, Process, ulong) OnDevice(int pages)
    {
        var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap((ulong)pages * P, RW, PrivAnon);
        Fill(p, a, pages);
        Assert.That(dev.MigrateToDevice(p, a, pages), Is.EqualTo(pages));
        for (int i = 0; i < pages; i++)
        {
            var e = p.Mm.EntryAt(a + (ulong)i * P);
            Assert.That(e.Kind, Is.EqualTo(PteKind.DevicePrivate));
            Assert.That(e.IsWritable, Is.True);
        }
        return (machine, dev, p, a);
    }

    // B.7 do_swap_page: a CPU access faults into the owner's migrate_to_ram with vmf->page the device page,
    // the driver's migrate_vma raises MIGRATE (owner = driver) on that page, and the access is retried.
    [Test]
    public void CpuRead_FaultsIntoOwnersMigrateToRam_WithFaultingPage_AndRetries()
    {
        var (machine, dev, p, a) = OnDevice(4);
        using var _ = machine;
        ulong devPfn = p.Mm.EntryAt(a + 2 * P).Pfn;
        using var rec = NotifierRecorder.Attach(p.Mm);
        Assert.That(p.Load<int>(a + 2 * P), Is.EqualTo(1002));
        Assert.That(dev.MigrateToRamCalls, Is.EqualTo(1));
        Assert.That(dev.LastFault, Is.EqualTo((a + 2 * P, devPfn, false)));
        Assert.That(rec.Events, Is.EqualTo(new[] { Mig(a + 2 * P, a + 3 * P, dev) }));
        var e = p.Mm.EntryAt(a + 2 * P);
        Assert.That(e.Kind, Is.EqualTo(PteKind.Present));
        Assert.That(dev.Pgmap.Contains(e.Pfn), Is.False);
        Assert.That(e.IsWritable, Is.True, "a writable device entry comes back writable");
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.DevicePrivate), "only the faulting page moved");
        Assert.That(dev.PageFrees, Is.EqualTo(1));
        Assert.That(dev.FreedPfns, Is.EqualTo(new[] { devPfn }));
        p.Store(a + 3 * P + 8, 77);
        Assert.That(dev.LastFault!.Value.Write, Is.True);
        Assert.That(Page.AlignDown(dev.LastFault!.Value.Address), Is.EqualTo(a + 3 * P), "vmf->address is the faulting page (the kernel masks it)");
        AssertFilled(p, a, 4);
        Assert.That(p.Load<int>(a + 3 * P + 8), Is.EqualTo(77));
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // D fork: the child gets a copy of the entry (page ref, rss), both become read-only device-private entries,
    // the parent sees PROTECTION_PAGE over the VMA; a CPU write later migrates back then COW-copies.
    [Test]
    public void Fork_BothSidesReadOnlyDeviceEntries_WriteMigratesBackThenCows()
    {
        var (machine, dev, p, a) = OnDevice(4);
        using var _ = machine;
        using var rec = NotifierRecorder.Attach(p.Mm);
        ulong devPfn = p.Mm.EntryAt(a).Pfn;
        var child = p.Fork();
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.ProtectionPage, a, a + 4 * P) }));
        for (int i = 0; i < 4; i++)
        {
            var pe = p.Mm.EntryAt(a + (ulong)i * P);
            var ce = child.Mm.EntryAt(a + (ulong)i * P);
            Assert.That(pe.Kind, Is.EqualTo(PteKind.DevicePrivate));
            Assert.That(ce.Kind, Is.EqualTo(PteKind.DevicePrivate));
            Assert.That(pe.IsWritable || ce.IsWritable, Is.False, $"page {i}: both entries read-only");
            Assert.That(ce.Pfn, Is.EqualTo(pe.Pfn));
        }
        Assert.That(dev.Pgmap.RefCount(devPfn), Is.EqualTo(2));
        Assert.That(child.Mm.RssAnon, Is.EqualTo(4), "device pages are counted like the anon pages they replace (A.11)");
        Assert.That(dev.MigrateToRamCalls, Is.Zero, "fork copies entries, it does not migrate");
        machine.CheckInvariants();

        rec.Clear();
        using var crec = NotifierRecorder.Attach(child.Mm);
        child.Store(a, 42);
        Assert.That(dev.MigrateToRamCalls, Is.EqualTo(1));
        Assert.That(crec.Events, Is.EqualTo(new[] { Mig(a, a + P, dev), Ev(NotifyEvent.Clear, a, a + P) }), "migrate_to_ram, then the COW break");
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a, a + P) }), "the parent's mapping is unmapped by try_to_migrate");
        var pe0 = p.Mm.EntryAt(a);
        Assert.That(pe0.Kind, Is.EqualTo(PteKind.Present));
        Assert.That(pe0.IsWritable, Is.False, "the page came back read-only (still shared)");
        Assert.That(child.Mm.EntryAt(a).Pfn, Is.Not.EqualTo(pe0.Pfn));
        Assert.That(child.Load<int>(a), Is.EqualTo(42));
        AssertFilled(p, a, 4);
        p.Store(a + P, 43);   // parent write: migrate back (shared) then COW in the parent
        Assert.That(p.Load<int>(a + P), Is.EqualTo(43));
        Assert.That(child.Load<int>(a + P), Is.EqualTo(1001));
        AssertFilled(child, a + 2 * P, 2, seed: 1002);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // D fork: MAP_SHARED anonymous memory is not COW — entries (there: shmem pages) are not downgraded.
    // Device-private entries only exist for private anonymous memory, so a shared mapping stays system memory.
    [Test]
    public void Fork_DoesNotTouchDeviceEntriesOutsideTheCowVma()
    {
        var (machine, dev, p, a) = OnDevice(2);
        using var _ = machine;
        ulong s = p.Mmap(2 * P, RW, SharedAnon);
        Fill(p, s, 2, seed: 9000);
        using var rec = NotifierRecorder.Attach(p.Mm);
        var child = p.Fork();
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.ProtectionPage, a, a + 2 * P) }), "only the COW mapping is write-protected");
        Assert.That(p.Mm.EntryAt(s).IsWritable, Is.True);
        child.Store(s, 1);
        Assert.That(p.Load<int>(s), Is.EqualTo(1));
        AssertFilled(child, a, 2);
        AssertFilled(p, a, 2);
        ExitAllAndCheckDevices(machine, dev);
    }

    // D mremap: entries move as-is (same device page, same permission); UNMAP on the old range; access at the new VA migrates back.
    [Test]
    public void Mremap_MovesDeviceEntriesAsIs_UnmapOnOldRange()
    {
        var (machine, dev, p, a) = OnDevice(4);
        using var _ = machine;
        var pfns = Enumerable.Range(0, 4).Select(i => p.Mm.EntryAt(a + (ulong)i * P).Pfn).ToArray();
        ulong target = p.Mmap(8 * P, RW, PrivAnon);
        p.Munmap(target, 8 * P);
        using var rec = NotifierRecorder.Attach(p.Mm);
        ulong b = p.Mremap(a, 4 * P, 4 * P, MremapFlags.MayMove | MremapFlags.Fixed, target);
        Assert.That(b, Is.EqualTo(target));
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Unmap, a, a + 4 * P), Ev(NotifyEvent.Unmap, a, a + 4 * P) }));
        for (int i = 0; i < 4; i++)
        {
            var e = p.Mm.EntryAt(b + (ulong)i * P);
            Assert.That(e.Kind, Is.EqualTo(PteKind.DevicePrivate));
            Assert.That(e.Pfn, Is.EqualTo(pfns[i]));
            Assert.That(e.IsWritable, Is.True);
        }
        Assert.That(dev.MigrateToRamCalls, Is.Zero);
        Assert.That(dev.PageFrees, Is.Zero);
        AssertFilled(p, b, 4);
        Assert.That(dev.MigrateToRamCalls, Is.EqualTo(4));
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // D munmap: entries zapped, folio_free for each page, no migration back, UNMAP only.
    [Test]
    public void Munmap_DropsDevicePages_PageFree_NoMigration()
    {
        var (machine, dev, p, a) = OnDevice(4);
        using var _ = machine;
        long used = machine.UsedPages;
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Munmap(a, 4 * P);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Unmap, a, a + 4 * P) }));
        Assert.That(dev.MigrateToRamCalls, Is.Zero);
        Assert.That(dev.PageFrees, Is.EqualTo(4));
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        Assert.That(machine.UsedPages, Is.LessThanOrEqualTo(used), "no system page was allocated to migrate back");
        Assert.That(p.Mm.RssAnon, Is.Zero);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // D MADV_DONTNEED: CLEAR, pages freed on the device, data discarded (reads back zero), no migration.
    [Test]
    public void MadvDontNeed_DropsDevicePages_ReadsZero_NoMigration()
    {
        var (machine, dev, p, a) = OnDevice(4);
        using var _ = machine;
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Madvise(a + P, 2 * P, Advice.DontNeed);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a + P, a + 3 * P) }));
        Assert.That(dev.PageFrees, Is.EqualTo(2));
        Assert.That(dev.MigrateToRamCalls, Is.Zero);
        Assert.That(p.Mm.EntryAt(a + P).Kind, Is.EqualTo(PteKind.None));
        AssertZero(p, a + P, 2);
        Assert.That(p.Load<int>(a), Is.EqualTo(1000));
        Assert.That(p.Load<int>(a + 3 * P), Is.EqualTo(1003));
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // D exit: RELEASE then UNMAP; device pages freed, never migrated (A.11: always released at exit).
    [Test]
    public void Exit_DropsDevicePages_ReleaseThenUnmap_NoMigration()
    {
        var (machine, dev, p, a) = OnDevice(4);
        using var _ = machine;
        var rec = NotifierRecorder.Attach(p.Mm);
        p.Exit();
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Release, 0, ulong.MaxValue), Ev(NotifyEvent.Unmap, 0, ulong.MaxValue) }));
        rec.Dispose();
        Assert.That(dev.MigrateToRamCalls, Is.Zero);
        Assert.That(dev.PageFrees, Is.EqualTo(4));
        Assert.That(dev.Pgmap.PagesInUse, Is.Zero);
        machine.CheckInvariants();
        Assert.That(machine.UsedPages, Is.Zero);
    }

    // D MADV_FREE: CLEAR for the range, device-private entries left untouched on the device.
    [Test]
    public void MadvFree_LeavesDeviceEntriesAlone()
    {
        var (machine, dev, p, a) = OnDevice(4);
        using var _ = machine;
        var before = Enumerable.Range(0, 4).Select(i => p.Mm.EntryAt(a + (ulong)i * P)).ToArray();
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Madvise(a, 4 * P, Advice.Free);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a, a + 4 * P) }));
        Assert.That(Enumerable.Range(0, 4).Select(i => p.Mm.EntryAt(a + (ulong)i * P)).ToArray(), Is.EqualTo(before));
        Assert.That(dev.PageFrees, Is.Zero);
        Assert.That(dev.MigrateToRamCalls, Is.Zero);
        AssertFilled(p, a, 4);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // D mprotect / H.7: PROTECTION_VMA; writable device-private entries are downgraded to read-only whatever the new protection.
    // (An mprotect to the VMA's current protection is a no-op in mprotect_fixup: no event, nothing changes.)
    [TestCase(Prot.Read)]
    [TestCase(Prot.Read | Prot.Write | Prot.Exec)]
    public void Mprotect_AlwaysDowngradesWritableDeviceEntries(Prot prot)
    {
        var (machine, dev, p, a) = OnDevice(4);
        using var _ = machine;
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mprotect(a, 4 * P, prot);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.ProtectionVma, a, a + 4 * P) }));
        for (int i = 0; i < 4; i++)
        {
            var e = p.Mm.EntryAt(a + (ulong)i * P);
            Assert.That(e.Kind, Is.EqualTo(PteKind.DevicePrivate));
            Assert.That(e.IsWritable, Is.False, $"page {i}");
        }
        Assert.That(dev.MigrateToRamCalls, Is.Zero);
        AssertFilled(p, a, 4);
        if ((prot & Prot.Write) != 0)
        {
            p.Store(a, 5);   // the page came back read-only; the write fault then upgrades it (exclusive anon page)
            Assert.That(p.Load<int>(a), Is.EqualTo(5));
            Assert.That(p.Mm.EntryAt(a).IsWritable, Is.True);
        }
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // H.7: granting write back after a read-only mprotect still leaves the device entries read-only.
    [Test]
    public void Mprotect_ReadOnlyThenReadWrite_EntriesStayReadOnly()
    {
        var (machine, dev, p, a) = OnDevice(2);
        using var _ = machine;
        p.Mprotect(a, 2 * P, Prot.Read);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mprotect(a, 2 * P, RW);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.ProtectionVma, a, a + 2 * P) }));
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.DevicePrivate));
        Assert.That(p.Mm.EntryAt(a).IsWritable, Is.False);
        p.Store(a + P, 3);
        Assert.That(p.Load<int>(a + P), Is.EqualTo(3));
        AssertFilled(p, a, 1);
        ExitAllAndCheckDevices(machine, dev);
    }

    // D fork / B.7: device-coherent pages behave as normal pages — fork shares them read-only, COW copies directly from device memory.
    [Test]
    public void Fork_CoherentPages_CowCopiesFromDeviceMemory()
    {
        using var machine = NewMachine();
        var coh = new TestDevice(machine, DevicePageKind.Coherent);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        Assert.That(coh.MigrateToDevice(p, a, 2), Is.EqualTo(2));
        ulong cpfn = p.Mm.EntryAt(a).Pfn;
        using var rec = NotifierRecorder.Attach(p.Mm);
        var child = p.Fork();
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.ProtectionPage, a, a + 2 * P) }));
        Assert.That(child.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(child.Mm.EntryAt(a).Pfn, Is.EqualTo(cpfn));
        using var crec = NotifierRecorder.Attach(child.Mm);
        child.Store(a + 4, 6);
        Assert.That(crec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a, a + P) }));
        Assert.That(coh.Pgmap.Contains(child.Mm.EntryAt(a).Pfn), Is.False, "the COW copy is a system page");
        Assert.That(child.Load<int>(a), Is.EqualTo(1000));
        Assert.That(p.Mm.EntryAt(a).Pfn, Is.EqualTo(cpfn));
        Assert.That(coh.MigrateToRamCalls, Is.Zero);
        AssertFilled(p, a, 2);
        AssertFilled(child, a, 2);
        ExitAllAndCheckDevices(machine, coh);
    }
}
