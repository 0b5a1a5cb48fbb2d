using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.DeviceMemory;

/// <summary>GUP pins and device memory (reference A.8 "Pinnable", A.11, B.6 unmap step, B.7 GUP).</summary>
public class PinningTests
{
    // B.7 GUP: a pin faults the pages in.
    [Test]
    public void Pin_FaultsPagesIn()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        using (var pin = p.PinUserPages(a, 4, write: true, longTerm: false))
        {
            for (int i = 0; i < 4; i++)
            {
                var e = p.Mm.EntryAt(a + (ulong)i * P);
                Assert.That(e.Kind, Is.EqualTo(PteKind.Present));
                Assert.That(e.IsWritable, Is.True);
                Assert.That(pin.Pfns[i], Is.EqualTo(e.Pfn));
            }
        }
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // A.8/A.11/B.7: device-private memory is never pinned — GUP migrates it back first (short or long-term).
    [TestCase(false)]
    [TestCase(true)]
    public void Pin_DevicePrivatePages_MigratedBackFirst(bool longTerm)
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        Assert.That(dev.MigrateToDevice(p, a, 4), Is.EqualTo(4));
        using var rec = NotifierRecorder.Attach(p.Mm);
        using (var pin = p.PinUserPages(a, 4, write: false, longTerm))
        {
            Assert.That(dev.MigrateToRamCalls, Is.EqualTo(4));
            Assert.That(rec.Events.Select(e => (e.Event, e.Owner)).Distinct(), Is.EqualTo(new[] { (NotifyEvent.Migrate, (object?)dev) }), "D: GUP on device-private pages → migrate_to_ram → MIGRATE");
            for (int i = 0; i < 4; i++)
            {
                Assert.That(dev.Pgmap.Contains(pin.Pfns[i]), Is.False);
                Assert.That(p.Mm.EntryAt(a + (ulong)i * P).Pfn, Is.EqualTo(pin.Pfns[i]));
            }
            Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
            AssertFilled(p, a, 4);
        }
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // A.8: coherent memory is not long-term pinnable — FOLL_LONGTERM migrates it to system memory first (migrate_device_coherent_folio).
    [Test]
    public void LongTermPin_CoherentPage_MigratedToSystemFirst()
    {
        using var machine = NewMachine();
        var coh = new TestDevice(machine, DevicePageKind.Coherent);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        Assert.That(coh.MigrateToDevice(p, a, 2), Is.EqualTo(2));
        using (var pin = p.PinUserPages(a, 2, write: true, longTerm: true))
        {
            for (int i = 0; i < 2; i++)
            {
                Assert.That(coh.Pgmap.Contains(pin.Pfns[i]), Is.False, $"page {i} left coherent memory");
                Assert.That(p.Mm.EntryAt(a + (ulong)i * P).Pfn, Is.EqualTo(pin.Pfns[i]));
            }
            Assert.That(coh.PageFrees, Is.EqualTo(2));
            AssertFilled(p, a, 2);
        }
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // B.7: a short (non-LONGTERM) pin of a coherent page leaves it in device memory.
    [Test]
    public void ShortPin_CoherentPage_StaysInPlace()
    {
        using var machine = NewMachine();
        var coh = new TestDevice(machine, DevicePageKind.Coherent);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        Assert.That(coh.MigrateToDevice(p, a, 2), Is.EqualTo(2));
        ulong before = p.Mm.EntryAt(a).Pfn;
        using (var pin = p.PinUserPages(a, 2, write: true, longTerm: false))
        {
            Assert.That(pin.Pfns[0], Is.EqualTo(before));
            Assert.That(coh.Pgmap.Contains(pin.Pfns[1]), Is.True);
            Assert.That(coh.PageFrees, Is.Zero);
            // B.6 unmap step: a pinned coherent page is not migrated back either.
            Assert.That(coh.MigrateToSystem(p, a, 2), Is.Zero);
            Assert.That(coh.SrcAfterSetup, Is.All.EqualTo(0UL), "pinned pages are restored and their src zeroed");
            Assert.That(p.Mm.EntryAt(a).Pfn, Is.EqualTo(before));
            AssertFilled(p, a, 2);
        }
        ExitAllAndCheckDevices(machine, coh);
    }

    // B.6 unmap step / H.8: pinned system pages are not collected — src zeroed after setup, pages stay, data intact.
    [Test]
    public void PinnedPages_NotMigrated_SrcZeroAfterSetup()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        using (var pin = p.PinUserPages(a + P, 2, write: true, longTerm: true))
        {
            Assert.That(dev.MigrateToDevice(p, a, 4), Is.EqualTo(2));
            var s = dev.SrcAfterSetup;
            Assert.That(s[0] & MigratePfn.Migrate, Is.Not.Zero);
            Assert.That(s[1], Is.Zero);
            Assert.That(s[2], Is.Zero);
            Assert.That(s[3] & MigratePfn.Migrate, Is.Not.Zero);
            Assert.That(p.Mm.EntryAt(a + P).Pfn, Is.EqualTo(pin.Pfns[0]));
            Assert.That(p.Mm.EntryAt(a + 2 * P).Pfn, Is.EqualTo(pin.Pfns[1]));
            Assert.That(p.Mm.EntryAt(a + P).Kind, Is.EqualTo(PteKind.Present));
            Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.DevicePrivate));
            AssertFilled(p, a, 4);
        }
        ExitAllAndCheckDevices(machine, dev);
    }
    // Issue 9 cause 5: do_wp_page reuses a PageAnonExclusive page whatever references it has. A
    // page on the device and shared after fork comes back read-only on a read pin, which unshares
    // it (the parent gets its own exclusive page); a later write — a CPU store or a write pin —
    // must upgrade that very page, never copy it away from the pin.
    [TestCase(false)]
    [TestCase(true)]
    public void WriteFaultReusesPinnedExclusiveAnonPage(bool store)
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        Assert.That(dev.MigrateToDevice(p, a, 4), Is.EqualTo(4));
        var child = p.Fork();
        using (var readPin = p.PinUserPages(a, 4, write: false, longTerm: true))
        {
            ulong pinned = readPin.Pfns[0];
            Assert.That(p.Mm.EntryAt(a).Pfn, Is.EqualTo(pinned));
            if (store) p.Store(a, 0x1234L);
            else
            {
                using var writePin = p.PinUserPages(a, 4, write: true, longTerm: true);
                Assert.That(writePin.Pfns, Is.EqualTo(readPin.Pfns));
                p.Store(a, 0x1234L);
            }
            var e = p.Mm.EntryAt(a);
            Assert.That(e.Pfn, Is.EqualTo(pinned), "the write moved the process away from its pinned page");
            Assert.That(e.IsWritable, Is.True);
            Assert.That(BitConverter.ToInt64(machine.Memory.Pages(pinned)[..8]), Is.EqualTo(0x1234L));   // the device sees what the CPU wrote
        }
        AssertFilled(child, a, 4);
        machine.CheckInvariants();
        child.Exit();
        ExitAll(machine);
    }
}
