using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.DeviceMemory;

using Hmm.Runtime.Mirror;

/// <summary>hmm_range_fault over device memory (reference B.4 device rows, C HMM-R17, H.2).</summary>
public class DeviceRangeFaultTests
{
    private static Errno Fault(Process p, NotifierRecorder rec, ulong start, int pages, ulong defaultFlags, object? owner, out ulong[] pfns)
    {
        var range = new HmmRange(rec.Notifier, start, start + (ulong)pages * P)
        {
            DefaultFlags = defaultFlags,
            DevPrivateOwner = owner,
            HmmPfns = new ulong[pages],
        };
        for (int attempt = 0; ; attempt++)
        {
            Array.Clear(range.HmmPfns);
            range.NotifierSeq = rec.Notifier.ReadBegin();
            p.Mm.MmapLock.ReadLock();
            Errno e;
            try { e = range.Fault(); }
            finally { p.Mm.MmapLock.ReadUnlock(); }
            if (e == Errno.EBUSY && attempt < 100) continue;
            if (e == Errno.Ok && rec.Notifier.ReadRetry(range.NotifierSeq) && attempt < 100) continue;
            pfns = range.HmmPfns;
            return e;
        }
    }

    private static (Machine, TestDevice, Process, ulong) OnDevice(int pages)
    {
        var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap((ulong)pages * P, RW, PrivAnon);
        Fill(p, a, pages);
        Assert.That(dev.MigrateToDevice(p, a, pages), Is.EqualTo(pages));
        return (machine, dev, p, a);
    }

    // B.4 row "device-private, pgmap owner == dev_private_owner": VALID|WRITE with the device pfn, never faulted (HMM-R17).
    [Test]
    public void OwnPrivatePages_ReportedValidWithDevicePfn_NeverFaulted()
    {
        var (machine, dev, p, a) = OnDevice(4);
        using var _ = machine;
        using var rec = NotifierRecorder.Attach(p.Mm);
        Assert.That(Fault(p, rec, a, 4, HmmPfn.ReqFault | HmmPfn.ReqWrite, dev, out var pfns), Is.EqualTo(Errno.Ok));
        for (int i = 0; i < 4; i++)
            Assert.That(pfns[i], Is.EqualTo(HmmPfn.Make(p.Mm.EntryAt(a + (ulong)i * P).Pfn, write: true)), $"page {i}");
        Assert.That(dev.Pgmap.Contains(HmmPfn.ToPfn(pfns[0])), Is.True);
        Assert.That(dev.MigrateToRamCalls, Is.Zero);
        Assert.That(rec.Events, Is.Empty);
        AssertFilled(p, a, 4);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // H.2 / D mprotect and fork: REQ_WRITE on the owner's read-only device entry → VALID without WRITE, success, no fault.
    [Test]
    public void OwnReadOnlyPrivatePages_ReqWrite_ValidWithoutWrite_NoFault()
    {
        var (machine, dev, p, a) = OnDevice(4);
        using var _ = machine;
        p.Mprotect(a, 2 * P, Prot.Read | Prot.Write | Prot.Exec);   // downgrades the first two (H.7)
        var child = p.Fork();                                         // downgrades the rest, in both
        using var rec = NotifierRecorder.Attach(p.Mm);
        using var crec = NotifierRecorder.Attach(child.Mm);
        Assert.That(Fault(p, rec, a, 4, HmmPfn.ReqFault | HmmPfn.ReqWrite, dev, out var pfns), Is.EqualTo(Errno.Ok));
        Assert.That(Fault(child, crec, a, 4, HmmPfn.ReqFault | HmmPfn.ReqWrite, dev, out var cpfns), Is.EqualTo(Errno.Ok));
        for (int i = 0; i < 4; i++)
        {
            ulong pfn = p.Mm.EntryAt(a + (ulong)i * P).Pfn;
            Assert.That(pfns[i], Is.EqualTo(HmmPfn.Make(pfn, write: false)), $"parent page {i}");
            Assert.That(cpfns[i], Is.EqualTo(HmmPfn.Make(pfn, write: false)), $"child page {i}");
        }
        Assert.That(dev.MigrateToRamCalls, Is.Zero);
        Assert.That(rec.Events, Is.Empty);
        Assert.That(crec.Events, Is.Empty);
        AssertFilled(p, a, 4);
        AssertFilled(child, a, 4);
        ExitAllAndCheckDevices(machine, dev);
    }

    // B.4 row "device-private, other owner": fault requested → the owner's migrate_to_ram, then VALID with a system pfn.
    [Test]
    public void OtherOwnersPrivatePages_FaultRequested_MigratedBackToSystem()
    {
        var (machine, dev, p, a) = OnDevice(4);
        using var _ = machine;
        using var rec = NotifierRecorder.Attach(p.Mm);
        Assert.That(Fault(p, rec, a, 4, HmmPfn.ReqFault, new object(), out var pfns), Is.EqualTo(Errno.Ok));
        Assert.That(dev.MigrateToRamCalls, Is.EqualTo(4));
        Assert.That(rec.Events.Select(e => (e.Event, e.Owner)).Distinct(), Is.EqualTo(new[] { (NotifyEvent.Migrate, (object?)dev) }));
        for (int i = 0; i < 4; i++)
        {
            var e = p.Mm.EntryAt(a + (ulong)i * P);
            Assert.That(e.Kind, Is.EqualTo(PteKind.Present));
            Assert.That(HmmPfn.IsValid(pfns[i]), Is.True);
            Assert.That(HmmPfn.ToPfn(pfns[i]), Is.EqualTo(e.Pfn));
            Assert.That(dev.Pgmap.Contains(e.Pfn), Is.False);
        }
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        AssertFilled(p, a, 4);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // B.4 row "device-private, other owner", no fault: 0 (also with no owner at all — HMM-R17's failure mode).
    [Test]
    public void OtherOwnersPrivatePages_NoFault_ReportedZero()
    {
        var (machine, dev, p, a) = OnDevice(4);
        using var _ = machine;
        using var rec = NotifierRecorder.Attach(p.Mm);
        Assert.That(Fault(p, rec, a, 4, 0, new object(), out var pfns), Is.EqualTo(Errno.Ok));
        Assert.That(pfns, Is.All.EqualTo(0UL));
        Assert.That(Fault(p, rec, a, 4, 0, null, out pfns), Is.EqualTo(Errno.Ok));
        Assert.That(pfns, Is.All.EqualTo(0UL));
        Assert.That(dev.MigrateToRamCalls, Is.Zero);
        Assert.That(rec.Events, Is.Empty);
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.DevicePrivate));
        AssertFilled(p, a, 4);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // A.8 / B.7: coherent pages are ordinary present pages for hmm_range_fault, whatever dev_private_owner says.
    [Test]
    public void CoherentPages_AreOrdinaryPages()
    {
        using var machine = NewMachine();
        var coh = new TestDevice(machine, DevicePageKind.Coherent);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        Assert.That(coh.MigrateToDevice(p, a, 4), Is.EqualTo(4));
        using var rec = NotifierRecorder.Attach(p.Mm);
        foreach (object? owner in new[] { coh, new object(), null })
        {
            Assert.That(Fault(p, rec, a, 4, HmmPfn.ReqFault | HmmPfn.ReqWrite, owner, out var pfns), Is.EqualTo(Errno.Ok));
            for (int i = 0; i < 4; i++)
            {
                var e = p.Mm.EntryAt(a + (ulong)i * P);
                Assert.That(e.Kind, Is.EqualTo(PteKind.Present));
                Assert.That(coh.Pgmap.Contains(e.Pfn), Is.True);
                Assert.That(pfns[i], Is.EqualTo(HmmPfn.Make(e.Pfn, write: true)));
            }
        }
        Assert.That(rec.Events, Is.Empty);
        AssertFilled(p, a, 4);
        ExitAllAndCheckDevices(machine, coh);
    }
}
