using Hmm.Runtime;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Dmirror;

/// <summary>Each ioctl of reference E.4 on a private (minor 0) and a coherent (minor 2) device.</summary>
[TestFixture(0)]
[TestFixture(2)]
public class OperationTests(int minor) : DmirrorTestBase
{
    private DmirrorDevice Dev = null!;

    [SetUp]
    public void CreateDevice() => Dev = DmirrorDevice.Create(Machine, minor);

    [Test]
    public void ReadFaultsOnceThenReadsFromTheDevicePageTable()
    {
        ulong buf = Filled(16);
        using var m = Dev.Open(P);
        var mirror = Mirror(16);
        Assert.That(m.Read(buf, 16, mirror, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(16, 1)));
        Assert.That(mirror, Is.EqualTo(Pattern(16, 1)));
        Assert.That(m.Read(buf, 16, mirror, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(16, 0)));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void CommonChecksGiveEinvalAndZeroCounters()
    {
        ulong buf = Filled(4);
        using var m = Dev.Open(P);
        var mirror = Mirror(4);
        Assert.That(m.Read(buf + 1, 1, mirror, out var c), Is.EqualTo(Errno.EINVAL));
        Assert.That(c, Is.EqualTo(default(DmirrorCounters)));
        Assert.That(m.Read(buf, 0, mirror, out _), Is.EqualTo(Errno.EINVAL));
        Assert.That(m.Write(0xFFFF_FFFF_FFFF_F000, 2, mirror, out _), Is.EqualTo(Errno.EINVAL));
        Assert.That(m.MigrateToDevice(buf, -1, mirror, out _), Is.EqualTo(Errno.EINVAL));
        Assert.That(m.MigrateToSystem(buf + 8, 1, out _), Is.EqualTo(Errno.EINVAL));
        Assert.That(m.Snapshot(buf, 0, new byte[1], out _), Is.EqualTo(Errno.EINVAL));
        Assert.That(m.Exclusive(buf + 4095, 1, mirror, out _), Is.EqualTo(Errno.EINVAL));
        Assert.That(m.CheckExclusive(buf + 2, 1), Is.EqualTo(Errno.EINVAL));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void FaultErrorsFromReadAndWrite()
    {
        ulong ro = P.Mmap(4 * PageSize, Prot.Read, MapFlags.Private | MapFlags.Anonymous);
        ulong none = P.Mmap(4 * PageSize, Prot.None, MapFlags.Private | MapFlags.Anonymous);
        using var m = Dev.Open(P);
        var mirror = Mirror(4);
        Assert.That(m.Write(ro, 4, mirror, out var c), Is.EqualTo(Errno.EPERM));
        Assert.That(c, Is.EqualTo(default(DmirrorCounters)));
        Assert.That(m.Read(none, 4, mirror, out c), Is.EqualTo(Errno.EFAULT));
        Assert.That(m.Read(0x10_0000_0000, 1, mirror, out c), Is.EqualTo(Errno.EFAULT));   // no VMA
        Assert.That(c, Is.EqualTo(default(DmirrorCounters)));
        // A read of a never-touched read-only mapping maps the zero page.
        Assert.That(m.Read(ro, 4, mirror, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(4, 1)));
        Assert.That(mirror, Is.All.EqualTo(0));
        Assert.That(Snap(m, ro, 1)[0], Is.EqualTo(DmirrorProt.Zero | DmirrorProt.Read));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void WriteFaultsWritableAndTheCpuSeesTheData()
    {
        ulong buf = Filled(8);
        using var m = Dev.Open(P);
        var data = Pattern(8, 42);
        Assert.That(m.Write(buf, 8, data, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(8, 1)));
        Assert.That(CpuRead(buf, 8), Is.EqualTo(data));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void MigrateToDeviceAndBack()
    {
        ulong buf = Filled(16);
        using var m = Dev.Open(P);
        var mirror = Mirror(16);
        long calloc = Dev.Calloc;
        Assert.That(m.MigrateToDevice(buf, 16, mirror, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(16, 0)));
        Assert.That(mirror, Is.EqualTo(Pattern(16, 1)));
        Assert.That(Dev.Calloc - calloc, Is.EqualTo(16));
        Assert.That(Snap(m, buf, 16), Is.All.EqualTo(Local(minor) | DmirrorProt.Write));
        Machine.CheckInvariants();

        Assert.That(m.MigrateToSystem(buf, 16, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(16, 0)));
        Assert.That(Snap(m, buf, 16), Is.All.EqualTo(DmirrorProt.Write));
        Assert.That(CpuRead(buf, 16), Is.EqualTo(Pattern(16, 1)));
        Assert.That(Dev.Cfree, Is.EqualTo(Dev.Calloc));
        // Nothing of ours left: a second MIGRATE_TO_SYS moves nothing.
        Assert.That(m.MigrateToSystem(buf, 16, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c.Cpages, Is.Zero);
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void CpuTouchBringsPagesBack()
    {
        ulong buf = Filled(4);
        using var m = Dev.Open(P);
        Assert.That(m.MigrateToDevice(buf, 4, Mirror(4), out _), Is.EqualTo(Errno.Ok));
        P.Store(buf + PageSize + 8, 0x1234_5678);
        var expected = Pattern(4, 1);
        BitConverter.GetBytes(0x1234_5678).CopyTo(expected, PageSize + 8);
        Assert.That(CpuRead(buf, 4), Is.EqualTo(expected));
        var prot = Snap(m, buf, 4);
        // Private memory comes back on a CPU touch; coherent memory is simply CPU-addressable.
        Assert.That(prot[1], Is.EqualTo(minor < 2 ? DmirrorProt.Write : DmirrorProt.DevCoherentLocal | DmirrorProt.Write));
        var mirror = Mirror(4);
        Assert.That(m.Read(buf, 4, mirror, out _), Is.EqualTo(Errno.Ok));
        Assert.That(mirror, Is.EqualTo(expected));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void MigrateErrorsMissingOrUnreadableVma()
    {
        ulong none = P.Mmap(4 * PageSize, Prot.None, MapFlags.Private | MapFlags.Anonymous);
        ulong buf = Filled(4);
        using var m = Dev.Open(P);
        Assert.That(m.MigrateToDevice(none, 4, Mirror(4), out var c), Is.EqualTo(Errno.EINVAL));
        Assert.That(m.MigrateToDevice(0x10_0000_0000, 4, Mirror(4), out c), Is.EqualTo(Errno.EINVAL));
        Assert.That(m.MigrateToSystem(none, 4, out c), Is.EqualTo(Errno.EINVAL));
        // A range running past the VMA into a hole: the first piece migrates, then EINVAL.
        Assert.That(m.MigrateToDevice(buf, 8, Mirror(8), out c), Is.EqualTo(Errno.EINVAL));
        Assert.That(c, Is.EqualTo(default(DmirrorCounters)));
        Assert.That(Snap(m, buf, 4), Is.All.EqualTo(Local(minor) | DmirrorProt.Write));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void FailAllocSkipsOneSmallPageAndMigrateToDeviceReportsEnoent()
    {
        ulong buf = Filled(8);
        using var m = Dev.Open(P);
        Assert.That(m.SetFlags(DmirrorFlags.FailAlloc), Is.EqualTo(Errno.Ok));
        Assert.That(m.MigrateToDevice(buf, 8, Mirror(8), out var c), Is.EqualTo(Errno.ENOENT));
        Assert.That(c, Is.EqualTo(default(DmirrorCounters)));
        Assert.That(m.Flags, Is.EqualTo(DmirrorFlags.None));
        var prot = Snap(m, buf, 8);
        Assert.That(prot[0], Is.EqualTo(DmirrorProt.Write));
        Assert.That(prot[1..], Is.All.EqualTo(Local(minor) | DmirrorProt.Write));
        // Flag consumed: the next migration completes.
        var mirror = Mirror(8);
        Assert.That(m.MigrateToDevice(buf, 8, mirror, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c.Cpages, Is.EqualTo(8));
        Assert.That(mirror, Is.EqualTo(Pattern(8, 1)));
        // FAIL_ALLOC on the way back: the copy stops at the failed base page, nothing of the piece
        // moves, and the ioctl still returns 0 (test_hmm ignores the allocation result there).
        m.SetFlags(DmirrorFlags.FailAlloc);
        Assert.That(m.MigrateToSystem(buf, 8, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(0, 0)));
        Assert.That(Snap(m, buf, 8), Is.All.EqualTo(Local(minor) | DmirrorProt.Write));
        Assert.That(m.MigrateToSystem(buf, 8, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c.Cpages, Is.EqualTo(8));
        Assert.That(CpuRead(buf, 8), Is.EqualTo(Pattern(8, 1)));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void ExclusiveThenCheckExclusiveRevokedByCpuWrites()
    {
        ulong buf = Filled(4);
        using var m = Dev.Open(P);
        var mirror = Mirror(4);
        Assert.That(m.Exclusive(buf, 4, mirror, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(4, 0)));
        Assert.That(mirror, Is.EqualTo(Pattern(4, 1)));
        Assert.That(m.CheckExclusive(buf, 4), Is.EqualTo(Errno.EPERM));
        Assert.That(Machine.Processes, Has.Count.EqualTo(1));
        // A CPU write to page 0 revokes it; the invalidation also drops page 1 (one page past the range).
        P.Store(buf + 16, 5);
        Assert.That(m.CheckExclusive(buf, 2), Is.EqualTo(Errno.Ok));
        Assert.That(m.CheckExclusive(buf + (2 * PageSize), 1), Is.EqualTo(Errno.EPERM));
        P.Store(buf + (2 * PageSize), 6);
        P.Store(buf + (3 * PageSize), 7);
        Assert.That(m.CheckExclusive(buf, 4), Is.EqualTo(Errno.Ok));
        Assert.That(P.Load<int>(buf + 16), Is.EqualTo(5));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void ExclusiveOnReadOnlyMemoryFails()
    {
        ulong ro = P.Mmap(2 * PageSize, Prot.Read, MapFlags.Private | MapFlags.Anonymous);
        using var m = Dev.Open(P);
        Assert.That(m.Exclusive(ro, 2, Mirror(2), out var c), Is.EqualTo(Errno.EFAULT));
        Assert.That(c, Is.EqualTo(default(DmirrorCounters)));
        Assert.That(m.CheckExclusive(ro, 2), Is.EqualTo(Errno.Ok));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void ReleaseEvictsTheDeviceWithDataIntact()
    {
        ulong buf = Filled(32);
        using var m = Dev.Open(P);
        Assert.That(m.MigrateToDevice(buf, 32, Mirror(32), out _), Is.EqualTo(Errno.Ok));
        Assert.That(m.Release(), Is.EqualTo(Errno.Ok));
        Assert.That(Dev.ChunkCount, Is.Zero);
        Assert.That(Snap(m, buf, 32), Is.All.EqualTo(DmirrorProt.Write));
        Assert.That(CpuRead(buf, 32), Is.EqualTo(Pattern(32, 1)));
        Machine.CheckInvariants();
        // New chunks come on demand.
        var mirror = Mirror(32);
        Assert.That(m.MigrateToDevice(buf, 32, mirror, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(c.Cpages, Is.EqualTo(32));
        Assert.That(mirror, Is.EqualTo(Pattern(32, 1)));
        Assert.That(Dev.ChunkCount, Is.EqualTo(1));
        m.Close();
        Assert.That(CpuRead(buf, 32), Is.EqualTo(Pattern(32, 1)));
        Machine.CheckInvariants();
    }

    [Test]
    public void CloseEvictsTheWholeDeviceForOtherMirrorsToo()
    {
        ulong buf = Filled(8);
        var q = Machine.CreateProcess("other");
        ulong qbuf = q.Mmap(8 * PageSize, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        q.Write(qbuf, Pattern(8, 9));
        var m = Dev.Open(P);
        var mq = Dev.Open(q);
        Assert.That(m.MigrateToDevice(buf, 8, Mirror(8), out _), Is.EqualTo(Errno.Ok));
        Assert.That(mq.MigrateToDevice(qbuf, 8, Mirror(8), out _), Is.EqualTo(Errno.Ok));
        m.Close();
        Assert.That(Dev.ChunkCount, Is.Zero);
        Assert.That(Snap(mq, qbuf, 8), Is.All.EqualTo(DmirrorProt.Write));
        var back = new byte[8 * PageSize];
        q.Read(qbuf, back);
        Assert.That(back, Is.EqualTo(Pattern(8, 9)));
        Assert.That(CpuRead(buf, 8), Is.EqualTo(Pattern(8, 1)));
        Assert.Throws<ObjectDisposedException>(() => m.Read(buf, 1, Mirror(1), out _));
        mq.Dispose();
        Machine.CheckInvariants();
    }

    [Test]
    public void DeviceFileMappingIsMixedAndNotMigratable()
    {
        using var m = Dev.Open(P);
        ulong map = Dev.MmapDeviceFile(P, 4 * PageSize);
        var mirror = Mirror(4);
        mirror[3] = 1;
        Assert.That(m.Read(map, 4, mirror, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(mirror, Is.All.EqualTo(0));
        Assert.That(Snap(m, map, 4), Is.All.EqualTo(DmirrorProt.Write));
        Assert.That(m.MigrateToDevice(map, 4, Mirror(4), out c), Is.EqualTo(Errno.EINVAL));   // VM_SPECIAL: migrate_vma_setup refuses
        Assert.That(Snap(m, map, 4), Is.All.EqualTo(DmirrorProt.Write));
        P.Munmap(map, 4 * PageSize);
        m.Close();
        Machine.CheckInvariants();
    }
}
