using Hmm.Generators.Behaviour.Tests.Drivers;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using NUnit.Framework;

namespace Hmm.Generators.Behaviour.Tests;

/// <summary>
/// HmmDriver.MigrationWalk = TestHmmIoctl against the generated default walk, one difference per
/// test: each runs the same steps on both drivers and expects test_hmm's result only with the option.
/// </summary>
public sealed class IoctlWalkBehaviourTests
{
    private const ulong P = Page.Size;
    private Machine _machine = null!;
    private Process _process = null!;
    private SimDevice _device = null!;
    private WalkDevmem _memory = null!;
    private IWalkRecorder? _file;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 256L << 20 });
        _process = _machine.CreateProcess("app");
        _device = new SimDevice(_machine, "hmm_dmirror0");
        _memory = new WalkDevmem();
    }

    [TearDown]
    public void TearDown()
    {
        // A failed assertion must not leave the notifier and the device pages behind the exit.
        if (_file is { } file && !_closed) Close(file);
        _process.Exit();
        _machine.CheckInvariants();
        _machine.Dispose();
    }

    private IWalkRecorder Open(bool ioctl)
    {
        IWalkRecorder file = ioctl ? new IoctlWalkDriver(_memory) : new AlignedWalkDriver(_memory);
        Assert.That(file.Attach(_device, _process), Is.EqualTo(Errno.Ok));
        _file = file;
        return file;
    }

    private ulong MapWritten(int pages, Advice advice = Advice.NoHugePage)
    {
        ulong len = (ulong)pages * P;
        ulong map = _process.Mmap(len + Page.PmdSize, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        ulong buf = (map + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        _process.Madvise(buf, len, advice);
        for (int i = 0; i < pages; i++) _process.Store(buf + ((ulong)i * P), 0xD000UL + (ulong)i);
        return buf;
    }

    private void AssertData(ulong buf, int pages)
    {
        for (int i = 0; i < pages; i++)
            Assert.That(_process.Load<ulong>(buf + ((ulong)i * P)), Is.EqualTo(0xD000UL + (ulong)i), $"page {i}");
    }

    private bool _closed;

    private void Close(IWalkRecorder file)
    {
        _closed = true;
        file.Detach();
        Assert.That(_memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Pieces_AreAtMost512PagesFromTheAddress_OnlyWithTheOption(bool ioctl)
    {
        ulong buf = MapWritten(1024);
        var file = Open(ioctl);

        Assert.That(file.MigrateToDevice(buf + P, buf + (601 * P)), Is.EqualTo(Errno.Ok));

        var expected = ioctl
            ? new[] { (buf + P, buf + (513 * P)), (buf + (513 * P), buf + (601 * P)) }   // test_hmm: addr + 512 pages
            : new[] { (buf + P, buf + (512 * P)), (buf + (512 * P), buf + (601 * P)) };  // default: 2 MiB-aligned
        Assert.That(file.Pieces, Is.EqualTo(expected));
        Assert.That(_process.Mm.EntryAt(buf + (600 * P)).Kind, Is.EqualTo(PteKind.DevicePrivate));
        AssertData(buf, 1024);
        Close(file);
    }

    [TestCase(true, Errno.EINVAL)]
    [TestCase(false, Errno.EFAULT)]
    public void AnAddressWithoutAVma_IsEinval_OnlyWithTheOption(bool ioctl, Errno expected)
    {
        ulong buf = MapWritten(4);
        _process.Munmap(buf, 4 * P);
        var file = Open(ioctl);

        Assert.That(file.MigrateToDevice(buf, buf + (4 * P)), Is.EqualTo(expected));
        Assert.That(file.MigrateToSystem(buf, buf + (4 * P)), Is.EqualTo(expected));
        Assert.That(file.Pieces, Is.Empty, "nothing was migrated");
        Close(file);
    }

    [Test]
    public void AVmaWithoutVmRead_IsEinval_WithTheOption()
    {
        ulong buf = MapWritten(4);
        _process.Mprotect(buf, 4 * P, Prot.None);
        var file = Open(ioctl: true);

        Assert.That(file.MigrateToDevice(buf, buf + (4 * P)), Is.EqualTo(Errno.EINVAL));
        Assert.That(file.Pieces, Is.Empty);
        Assert.That(_process.Mm.EntryAt(buf).Kind, Is.Not.EqualTo(PteKind.DevicePrivate));
        Close(file);
    }

    [TestCase(true)]
    [TestCase(false)]
    public void ToDevice_APageThatDoesNotMove_KeepsItsMapping_OnlyWithTheOption(bool ioctl)
    {
        ulong buf = MapWritten(4);
        var file = Open(ioctl);
        Assert.That(file.Fault(buf, buf + (4 * P), write: true), Is.EqualTo(Errno.Ok));
        ulong vpn = buf >> Page.Shift;
        ulong systemPfn = file.Table[vpn];

        file.RefuseAfter(0, toDevice: true);   // page 0 gets no device page and stays in system memory
        Assert.That(file.MigrateToDevice(buf, buf + (4 * P)), Is.EqualTo(Errno.Ok));

        Assert.That(_process.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.Present));
        if (ioctl)
        {
            Assert.That(file.OwnErases, Is.Empty, "test_hmm invalidates nothing before migrating to the device");
            Assert.That(file.Table[vpn], Is.EqualTo(systemPfn), "the page that did not move keeps its entry");
        }
        else
        {
            Assert.That(file.OwnErases, Is.EqualTo(new[] { (buf, buf + (4 * P)) }));
            Assert.That(file.Table.ContainsKey(vpn), Is.False, "the default walk erased it before migrating");
        }
        for (ulong v = vpn + 1; v < vpn + 4; v++)
            Assert.That(_memory.DeviceChunkOf(file.Table[v]), Is.Not.Null, "moved pages are mapped to their device pages");
        AssertData(buf, 4);
        Close(file);
    }

    [TestCase(true, Errno.Ok)]
    [TestCase(false, Errno.ENOMEM)]
    public void ToSystem_AFailedAllocation_LeavesTheRestOnTheDevice_WithoutAnError_OnlyWithTheOption(bool ioctl, Errno expected)
    {
        ulong buf = MapWritten(4);
        var file = Open(ioctl);
        Assert.That(file.MigrateToDevice(buf, buf + (4 * P)), Is.EqualTo(Errno.Ok));
        ulong vpn = buf >> Page.Shift;

        file.OwnErases.Clear();
        file.RefuseAfter(2, toDevice: false);   // pages 0 and 1 get system pages, page 2 does not
        Assert.That(file.MigrateToSystem(buf, buf + (4 * P)), Is.EqualTo(expected));

        Assert.That(_process.Mm.EntryAt(buf + P).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(_process.Mm.EntryAt(buf + (2 * P)).Kind, Is.EqualTo(PteKind.DevicePrivate));
        Assert.That(_process.Mm.EntryAt(buf + (3 * P)).Kind, Is.EqualTo(PteKind.DevicePrivate));
        if (ioctl)
        {
            Assert.That(file.OwnErases, Is.EqualTo(new[] { (buf, buf + (2 * P)) }), "only the entries given a system page are erased");
            Assert.That(file.Table.ContainsKey(vpn + 2) && file.Table.ContainsKey(vpn + 3), Is.True, "pages left on the device stay mapped");
        }
        else
        {
            Assert.That(file.OwnErases, Is.EqualTo(new[] { (buf, buf + (4 * P)) }), "the default erases the whole piece first");
        }
        AssertData(buf, 4);   // the CPU brings pages 2 and 3 back (migrate_to_ram)
        Close(file);
    }

    [Test]
    public void ToSystem_Entries_CountA2MiBFolioOnce_MovedCountsItsPages()
    {
        ulong buf = MapWritten(512, Advice.HugePage);
        Assume.That(_process.Mm.EntryAt(buf).IsHuge, Is.True, "a THP backs the buffer");
        var file = (IoctlWalkDriver)Open(ioctl: true);
        Assert.That(file.MigrateToDevice(buf, buf + Page.PmdSize), Is.EqualTo(Errno.Ok));
        Assert.That(_process.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.DevicePrivate));

        Assert.That(file.MigrateToSystem(buf, buf + Page.PmdSize, out long moved, out long entries), Is.EqualTo(Errno.Ok));

        Assert.That(entries, Is.EqualTo(1), "test_hmm's cpages: the 2 MiB entry once");
        Assert.That(moved, Is.EqualTo(512));
        Assert.That(file.PagesMigratedToSystem, Is.EqualTo(512));
        AssertData(buf, 512);
        Close(file);
    }

    [Test]
    public void ToSystem_Entries_CountBasePagesOneEach()
    {
        ulong buf = MapWritten(8);
        var file = (IoctlWalkDriver)Open(ioctl: true);
        Assert.That(file.MigrateToDevice(buf, buf + (8 * P)), Is.EqualTo(Errno.Ok));

        Assert.That(file.MigrateToSystem(buf, buf + (8 * P), out long moved, out long entries), Is.EqualTo(Errno.Ok));

        Assert.That((moved, entries), Is.EqualTo((8L, 8L)));
        AssertData(buf, 8);
        Close(file);
    }
}
