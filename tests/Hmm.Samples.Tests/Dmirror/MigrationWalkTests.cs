using Hmm.Runtime;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Dmirror;

/// <summary>
/// What the generated ioctl walk (MigrationWalk.TestHmmIoctl) leaves in the mirror's page table,
/// as test_hmm's dmirror_migrate_to_device / _to_system do: nothing erased before migrating to the
/// device, only the migrated pages erased on the way back.
/// </summary>
[TestFixture(0)]
[TestFixture(2)]
public class MigrationWalkTests(int minor) : DmirrorTestBase
{
    private DmirrorDevice Dev = null!;

    [SetUp]
    public void CreateDevice() => Dev = DmirrorDevice.Create(Machine, minor);

    [Test]
    public void MigrateToDevice_APageThatDoesNotMove_KeepsItsEntry_SoTheReadBackSucceeds()
    {
        ulong buf = Filled(8);
        using var m = Dev.Open(P);
        Assert.That(m.Read(buf, 8, Mirror(8), out var c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(8, 1)));
        Assert.That(m.MappedPages, Is.EqualTo(8));

        // FAIL_ALLOC: page 0 gets no device page. Its entry from the read is still there (no
        // invalidation before the migration), so the read-back finds every page: 0, cpages 8.
        m.SetFlags(DmirrorFlags.FailAlloc);
        var mirror = Mirror(8);
        Assert.That(m.MigrateToDevice(buf, 8, mirror, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(8, 0)));
        Assert.That(mirror, Is.EqualTo(Pattern(8, 1)));
        Assert.That(m.MappedPages, Is.EqualTo(8));
        var prot = Snap(m, buf, 8);
        Assert.That(prot[0], Is.EqualTo(DmirrorProt.Write), "page 0 stayed in system memory");
        Assert.That(prot[1..], Is.All.EqualTo(Local(minor) | DmirrorProt.Write));

        // Every page is mapped: a device read needs no fault.
        Assert.That(m.Read(buf, 8, mirror, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(8, 0)));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void MigrateToDevice_WithoutAPriorRead_ThePageThatDoesNotMove_IsEnoent()
    {
        ulong buf = Filled(8);
        using var m = Dev.Open(P);
        m.SetFlags(DmirrorFlags.FailAlloc);
        Assert.That(m.MigrateToDevice(buf, 8, Mirror(8), out var c), Is.EqualTo(Errno.ENOENT));
        Assert.That(c, Is.EqualTo(default(DmirrorCounters)));
        Assert.That(m.MappedPages, Is.EqualTo(7), "only what moved was mapped");
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void MigrateToSystem_OverAMixedRange_ErasesOnlyThePagesThatMoved()
    {
        ulong buf = Filled(8);
        using var m = Dev.Open(P);
        Assert.That(m.Read(buf, 8, Mirror(8), out var c), Is.EqualTo(Errno.Ok));
        Assert.That(m.MigrateToDevice(buf + (4 * PageSize), 4, Mirror(4), out c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(4, 0)));
        Assert.That(m.MappedPages, Is.EqualTo(8));

        Assert.That(m.MigrateToSystem(buf, 8, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(4, 0)), "cpages: the four device pages");
        Assert.That(m.MappedPages, Is.EqualTo(4), "the system pages' entries were not touched");

        // The device refaults the four migrated pages only: one fault from page 4 on.
        var mirror = Mirror(8);
        Assert.That(m.Read(buf, 8, mirror, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(8, 1)));
        Assert.That(mirror, Is.EqualTo(Pattern(8, 1)));
        Assert.That(CpuRead(buf, 8), Is.EqualTo(Pattern(8, 1)));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void MigrateToSystem_OfPagesThatNeverMoved_ErasesNothing()
    {
        ulong buf = Filled(4);
        using var m = Dev.Open(P);
        Assert.That(m.Read(buf, 4, Mirror(4), out var c), Is.EqualTo(Errno.Ok));
        Assert.That(m.MigrateToSystem(buf, 4, out c), Is.EqualTo(Errno.Ok));
        Assert.That(c, Is.EqualTo(new DmirrorCounters(0, 0)));
        Assert.That(m.MappedPages, Is.EqualTo(4));
        m.Close();
        Machine.CheckInvariants();
    }
}
