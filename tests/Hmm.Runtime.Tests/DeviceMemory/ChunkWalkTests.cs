using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.DeviceMemory;

/// <summary>
/// The cost of a device-memory chunk follows what it holds: the removal's eviction walk and the
/// count of pages in use skip the 2 MiB pieces without a live device folio (migrate_device_range
/// would find every page of such a piece free), and the memmap of a removed range is reused by the
/// next hot-add, fresh (every struct page as memmap_init_zone_device leaves it).
/// </summary>
public sealed class ChunkWalkTests
{
    [Test]
    public void PieceAccounting_FollowsInitAndFree_AndTheEvictionSkipsOnlyIdlePieces()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private, bytes: 16UL << 20, name: "priv");
        var pgmap = dev.Pgmap;
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(8 * P, RW, PrivAnon);
        Fill(p, a, 8);
        for (ulong piece = pgmap.FirstPfn; piece < pgmap.FirstPfn + pgmap.PageCount; piece += Page.PmdPages)
            Assert.That(pgmap.IsPieceIdle(piece), Is.True, "nothing initialised yet");
        Assert.That(pgmap.BasePagesInUse, Is.Zero);

        Assert.That(dev.MigrateToDevice(p, a, 3), Is.EqualTo(3));
        ulong devPfn = p.Mm.EntryAt(a).Pfn;
        Assert.That(pgmap.Contains(devPfn), Is.True);
        Assert.That(pgmap.IsPieceIdle(devPfn), Is.False);
        Assert.That(pgmap.BasePagesInUse, Is.EqualTo(3));
        int busy = 0;
        for (ulong piece = pgmap.FirstPfn; piece < pgmap.FirstPfn + pgmap.PageCount; piece += Page.PmdPages)
            if (!pgmap.IsPieceIdle(piece)) busy++;
        Assert.That(busy, Is.EqualTo(1), "three base pages carved from one free 2 MiB block");

        // The eviction still finds and moves the used pages (data intact), then the range goes.
        Assert.That(MigrateDevice.EvictAndRemove(pgmap), Is.EqualTo(Errno.Ok));
        Assert.That(pgmap.IsRemoved, Is.True);
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        AssertFilled(p, a, 8);
        machine.CheckInvariants();
        p.Exit();
        machine.CheckInvariants();
    }

    [Test]
    public void PieceIdle_AfterTheLastPageOfThePieceIsFreed()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private, bytes: 4UL << 20, name: "priv");
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        Assert.That(dev.MigrateToDevice(p, a, 4), Is.EqualTo(4));
        ulong devPfn = p.Mm.EntryAt(a).Pfn;
        Assert.That(dev.MigrateToSystem(p, a, 3), Is.EqualTo(3));
        Assert.That(dev.Pgmap.IsPieceIdle(devPfn), Is.False, "one page of the piece is still on the device");
        Assert.That(dev.Pgmap.BasePagesInUse, Is.EqualTo(1));
        Assert.That(dev.MigrateToSystem(p, a + 3 * P, 1), Is.EqualTo(1));
        Assert.That(dev.Pgmap.IsPieceIdle(devPfn), Is.True);
        Assert.That(dev.Pgmap.BasePagesInUse, Is.Zero);
        AssertFilled(p, a, 4);
        ExitAllAndCheckDevices(machine, dev);
    }

    [Test]
    public void RemovedRangesMemmap_IsReusedFresh_ByTheNextHotAdd()
    {
        using var machine = NewMachine();
        var first = new TestDevice(machine, DevicePageKind.Private, bytes: 128UL << 20, name: "first");
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        Assert.That(first.MigrateToDevice(p, a, 2), Is.EqualTo(2));
        Assert.That(MigrateDevice.EvictAndRemove(first.Pgmap), Is.EqualTo(Errno.Ok));
        int sections = machine.Frames.OnlineSections;

        var second = new TestDevice(machine, DevicePageKind.Private, bytes: 128UL << 20, name: "second");
        Assert.That(machine.Frames.OnlineSections, Is.EqualTo(sections + 1));
        var pg = second.Pgmap;
        for (ulong pfn = pg.FirstPfn; pfn < pg.FirstPfn + pg.PageCount; pfn += 97)
        {
            Assert.That(machine.Frames.Flags(pfn), Is.EqualTo(PageFlags.Device), $"pfn 0x{pfn:x}");
            Assert.That(machine.Frames.RefCount(pfn) | machine.Frames.MapCount(pfn) | machine.Frames.PinCount(pfn) | machine.Frames.Order(pfn), Is.Zero);
        }
        Assert.That(second.MigrateToDevice(p, a, 2), Is.EqualTo(2));
        AssertFilled(p, a, 2);
        machine.CheckInvariants();
        p.Exit();
        Assert.That(MigrateDevice.EvictAndRemove(second.Pgmap), Is.EqualTo(Errno.Ok));
        machine.CheckInvariants();
    }
}
