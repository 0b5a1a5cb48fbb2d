using Hmm.Runtime;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Dmirror;

/// <summary>Scenarios across processes and devices (hmm-tests style).</summary>
public class ScenarioTests : DmirrorTestBase
{
    [Test]
    public void ForkAfterMigrationCopiesOnWriteFromDeviceMemory([Values(0, 2)] int minor)
    {
        var dev = DmirrorDevice.Create(Machine, minor);
        ulong buf = Filled(8);
        using var m = dev.Open(P);
        Assert.That(m.MigrateToDevice(buf, 8, Mirror(8), out _), Is.EqualTo(Errno.Ok));
        var child = P.Fork();
        child.Store(buf + 8, 0xC0FFEE);
        Assert.That(child.Load<int>(buf + 8), Is.EqualTo(0xC0FFEE));
        Assert.That(CpuRead(buf, 8), Is.EqualTo(Pattern(8, 1)));
        var mirror = Mirror(8);
        Assert.That(m.Read(buf, 8, mirror, out _), Is.EqualTo(Errno.Ok));
        Assert.That(mirror, Is.EqualTo(Pattern(8, 1)));
        Machine.CheckInvariants();
        child.Exit();
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void WriteToOwnReadOnlyPrivatePageAfterForkIsEfault()
    {
        var dev = DmirrorDevice.Create(Machine, 0);
        ulong buf = Filled(2);
        using var m = dev.Open(P);
        Assert.That(m.MigrateToDevice(buf, 2, Mirror(2), out _), Is.EqualTo(Errno.Ok));
        var child = P.Fork();   // both entries become read-only device-private entries
        Assert.That(Snap(m, buf, 2), Is.All.EqualTo(DmirrorProt.DevPrivateLocal | DmirrorProt.Read));
        Assert.That(m.Write(buf, 2, Pattern(2, 3), out var c), Is.EqualTo(Errno.EFAULT));   // H.2: VALID without WRITE
        Assert.That(c, Is.EqualTo(default(DmirrorCounters)));
        var mirror = Mirror(2);
        Assert.That(m.Read(buf, 2, mirror, out c), Is.EqualTo(Errno.Ok));
        Assert.That(mirror, Is.EqualTo(Pattern(2, 1)));
        child.Exit();
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void MremapMovesMigratedPagesAndTheMirrorRefaults()
    {
        var dev = DmirrorDevice.Create(Machine, 0);
        ulong buf = Filled(8);
        using var m = dev.Open(P);
        Assert.That(m.MigrateToDevice(buf, 8, Mirror(8), out _), Is.EqualTo(Errno.Ok));
        ulong target = P.Mmap(8 * PageSize, Prot.Read, MapFlags.Private | MapFlags.Anonymous);
        ulong moved = P.Mremap(buf, 8 * PageSize, 8 * PageSize, MremapFlags.MayMove | MremapFlags.Fixed, target);
        Assert.That(moved, Is.EqualTo(target));
        Assert.That(Snap(m, moved, 8), Is.All.EqualTo(DmirrorProt.DevPrivateLocal | DmirrorProt.Write));
        var mirror = Mirror(8);
        Assert.That(m.Read(moved, 8, mirror, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(8, 1)));
        Assert.That(mirror, Is.EqualTo(Pattern(8, 1)));
        Assert.That(m.Read(buf, 1, Mirror(1), out _), Is.EqualTo(Errno.EFAULT));
        Assert.That(CpuRead(moved, 8), Is.EqualTo(Pattern(8, 1)));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void PartialMunmapFreesTheDevicePagesOfTheHole()
    {
        var dev = DmirrorDevice.Create(Machine, 0);
        ulong buf = Filled(8);
        using var m = dev.Open(P);
        Assert.That(m.MigrateToDevice(buf, 8, Mirror(8), out _), Is.EqualTo(Errno.Ok));
        long cfree = dev.Cfree;
        P.Munmap(buf + (3 * PageSize), 2 * PageSize);
        Assert.That(dev.Cfree - cfree, Is.EqualTo(2));
        var mirror = Mirror(3);
        Assert.That(m.Read(buf, 3, mirror, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(mirror, Is.EqualTo(Pattern(8, 1)[..(3 * PageSize)]));
        Assert.That(m.Read(buf, 8, Mirror(8), out c), Is.EqualTo(Errno.EFAULT));
        Assert.That(m.MigrateToSystem(buf + (5 * PageSize), 3, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c.Cpages, Is.EqualTo(3));
        Assert.That(CpuRead(buf + (5 * PageSize), 3), Is.EqualTo(Pattern(8, 1)[(5 * PageSize)..]));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void SecondDeviceFaultsTheFirstDevicesPrivatePagesBack()
    {
        var d0 = DmirrorDevice.Create(Machine, 0);
        var d1 = DmirrorDevice.Create(Machine, 1);
        ulong buf = Filled(8);
        using var m0 = d0.Open(P);
        using var m1 = d1.Open(P);
        Assert.That(m0.MigrateToDevice(buf, 8, Mirror(8), out _), Is.EqualTo(Errno.Ok));
        var mirror = Mirror(8);
        Assert.That(m1.Read(buf, 8, mirror, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(8, 1)));
        Assert.That(mirror, Is.EqualTo(Pattern(8, 1)));
        Assert.That(Snap(m0, buf, 8), Is.All.EqualTo(DmirrorProt.Write));
        Assert.That(d0.Cfree, Is.EqualTo(d0.Calloc));
        // And the other way round: d1 migrates, d0's mirror faults them back.
        Assert.That(m1.MigrateToDevice(buf, 8, Mirror(8), out _), Is.EqualTo(Errno.Ok));
        Assert.That(m0.Write(buf, 8, Pattern(8, 5), out c), Is.EqualTo(Errno.Ok));
        Assert.That(CpuRead(buf, 8), Is.EqualTo(Pattern(8, 5)));
        m0.Close(); m1.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void ThpMigratesWholeAndComesBackWhole()
    {
        var dev = DmirrorDevice.Create(Machine, 0);
        ulong buf = P.Mmap(4UL << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        P.Madvise(buf, 4UL << 20, Advice.HugePage);
        P.Write(buf, Pattern(512, 2));
        Assert.That(P.Mm.EntryAt(buf).IsHuge, Is.True);
        using var m = dev.Open(P);
        var mirror = Mirror(512);
        Assert.That(m.MigrateToDevice(buf, 512, mirror, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(c.Cpages, Is.EqualTo(512));
        Assert.That(mirror, Is.EqualTo(Pattern(512, 2)));
        Assert.That(P.Mm.EntryAt(buf).IsHuge, Is.True);
        Assert.That(Snap(m, buf, 512), Is.All.EqualTo(DmirrorProt.DevPrivateLocal | DmirrorProt.Write | DmirrorProt.Pmd));
        Assert.That(dev.ChunkCount, Is.EqualTo(2));   // the first chunk holds only base pages
        Assert.That(m.MigrateToSystem(buf, 512, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c.Cpages, Is.EqualTo(1));         // test_hmm counts the 2 MiB entry once
        Assert.That(Snap(m, buf, 512), Is.All.EqualTo(DmirrorProt.Write | DmirrorProt.Pmd));
        Assert.That(CpuRead(buf, 512), Is.EqualTo(Pattern(512, 2)));
        // A hole migrated whole, then touched by the CPU: the whole device folio comes back.
        ulong hole = buf + (2UL << 20);
        Assert.That(m.MigrateToDevice(hole, 512, Mirror(512), out c), Is.EqualTo(Errno.Ok));
        Assert.That(P.Load<long>(hole + 4096), Is.Zero);
        Assert.That(Snap(m, hole, 512), Has.None.EqualTo(DmirrorProt.DevPrivateLocal | DmirrorProt.Write | DmirrorProt.Pmd));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void ThpWithAllocationFailureFallsBackToBasePages([Values(0, 2)] int minor)
    {
        var dev = DmirrorDevice.Create(Machine, minor);
        ulong buf = P.Mmap(2UL << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        P.Madvise(buf, 2UL << 20, Advice.HugePage);
        P.Write(buf, Pattern(512, 4));
        using var m = dev.Open(P);
        m.SetFlags(DmirrorFlags.FailAlloc);
        var mirror = Mirror(512);
        Assert.That(m.MigrateToDevice(buf, 512, mirror, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(c.Cpages, Is.EqualTo(512));
        Assert.That(mirror, Is.EqualTo(Pattern(512, 4)));
        Assert.That(Snap(m, buf, 512), Is.All.EqualTo(Local(minor) | DmirrorProt.Write));
        Assert.That(m.MigrateToSystem(buf, 512, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c.Cpages, Is.EqualTo(512));
        Assert.That(CpuRead(buf, 512), Is.EqualTo(Pattern(512, 4)));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void ThpBackToSystemWithAllocationFailureFallsBackToBasePages()
    {
        var dev = DmirrorDevice.Create(Machine, 0);
        ulong buf = P.Mmap(2UL << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        P.Madvise(buf, 2UL << 20, Advice.HugePage);
        P.Write(buf, Pattern(512, 6));
        using var m = dev.Open(P);
        Assert.That(m.MigrateToDevice(buf, 512, Mirror(512), out _), Is.EqualTo(Errno.Ok));
        m.SetFlags(DmirrorFlags.FailAlloc);
        Assert.That(m.MigrateToSystem(buf, 512, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(c.Cpages, Is.EqualTo(512));
        Assert.That(Snap(m, buf, 512), Is.All.EqualTo(DmirrorProt.Write));
        Assert.That(CpuRead(buf, 512), Is.EqualTo(Pattern(512, 6)));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void ExclusiveAccessIsRevokedByTheCpuAndByAnotherDevice()
    {
        var d0 = DmirrorDevice.Create(Machine, 0);
        var d1 = DmirrorDevice.Create(Machine, 1);
        ulong buf = Filled(4);
        using var m0 = d0.Open(P);
        using var m1 = d1.Open(P);
        Assert.That(m0.Exclusive(buf, 4, Mirror(4), out _), Is.EqualTo(Errno.Ok));
        Assert.That(m1.Exclusive(buf + (2 * PageSize), 2, Mirror(2), out _), Is.EqualTo(Errno.Ok));
        Assert.That(m0.CheckExclusive(buf, 2), Is.EqualTo(Errno.EPERM));
        Assert.That(m0.CheckExclusive(buf + (2 * PageSize), 2), Is.EqualTo(Errno.Ok));
        Assert.That(m1.CheckExclusive(buf + (2 * PageSize), 2), Is.EqualTo(Errno.EPERM));
        P.Write(buf, Pattern(4, 8));
        Assert.That(m0.CheckExclusive(buf, 4), Is.EqualTo(Errno.Ok));
        Assert.That(m1.CheckExclusive(buf, 4), Is.EqualTo(Errno.Ok));
        var mirror = Mirror(4);
        Assert.That(m0.Read(buf, 4, mirror, out _), Is.EqualTo(Errno.Ok));
        Assert.That(mirror, Is.EqualTo(Pattern(4, 8)));
        m0.Close(); m1.Close();
        Machine.CheckInvariants();
    }
}
