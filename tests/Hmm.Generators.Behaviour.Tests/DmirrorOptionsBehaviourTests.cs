using Hmm.Generators.Behaviour.Tests.Drivers;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;
using NUnit.Framework;

namespace Hmm.Generators.Behaviour.Tests;

/// <summary>
/// The generator options test_hmm's dmirror needs, run against the runtime: device memory plugged at
/// init with test_hmm's free-list layout and calloc/cfree (InitialChunks, SplitFolios = false,
/// PageCounters), 32-page fault batches (FaultBatchPages) and the non-faulting, non-programming
/// snapshot (GenerateSnapshot).
/// </summary>
public sealed class DmirrorOptionsBehaviourTests
{
    private const ulong P = Page.Size;
    private Machine _machine = null!;
    private Process _process = null!;
    private SimDevice _device = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 256L << 20 });
        _process = _machine.CreateProcess("app");
        _device = new SimDevice(_machine, "hmm_dmirror0");
    }

    [TearDown]
    public void TearDown()
    {
        _process.Exit();
        _machine.CheckInvariants();
        _machine.Dispose();
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

    [Test]
    public void InitialChunk_IsPluggedWithTheMemory_AsBasePagesOnly()
    {
        var memory = new TestHmmDevmem();
        Assert.That(memory.DeviceChunkCount, Is.Zero, "nothing before the memory has a device");
        var file = new TestHmmFile(memory);
        Assert.That(file.Attach(_device, _process), Is.EqualTo(Errno.Ok));

        Assert.That(memory.DeviceChunkCount, Is.EqualTo(1), "dmirror_device_init's chunk, before any allocation");
        Assert.That(memory.DeviceFreeListLengths, Is.EqualTo((1024, 0)), "4 MiB of base pages, no folio");
        Assert.That(memory.DevicePagesAllocated, Is.Zero);
        file.Detach();
        Assert.That(memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
        Assert.That(memory.DeviceChunkCount, Is.Zero);
    }

    [Test]
    public void AFolioRequest_HotAddsAFolioChunk_AndCallocCfreeCountBasePages()
    {
        var memory = new TestHmmDevmem();
        var file = new TestHmmFile(memory);
        Assert.That(file.Attach(_device, _process), Is.EqualTo(Errno.Ok));
        ulong thp = MapWritten(512, Advice.HugePage);
        Assume.That(_process.Mm.EntryAt(thp).IsHuge, Is.True);

        Assert.That(file.MigrateToDevice(thp, thp + Page.PmdSize, out long moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(512));
        Assert.That(file.LargeAllocationFallbacks, Is.Zero, "the folio came from a new chunk laid out as folios");
        Assert.That(memory.DeviceChunkCount, Is.EqualTo(2), "the initial chunk holds base pages only");
        Assert.That(memory.DeviceFreeListLengths, Is.EqualTo((1024, 1)));
        Assert.That(memory.DevicePagesAllocated, Is.EqualTo(512), "calloc counts base pages");

        ulong small = MapWritten(16);
        Assert.That(file.MigrateToDevice(small, small + (16 * P), out moved), Is.EqualTo(Errno.Ok));
        Assert.That(memory.DeviceFreeListLengths, Is.EqualTo((1008, 1)), "base pages from the base-page list, no folio split");
        Assert.That(memory.DevicePagesAllocated, Is.EqualTo(528));
        Assert.That(memory.DevicePagesFreed, Is.Zero);

        Assert.That(file.MigrateToSystem(thp, thp + Page.PmdSize, out moved), Is.EqualTo(Errno.Ok));
        Assert.That(file.MigrateToSystem(small, small + (16 * P), out _), Is.EqualTo(Errno.Ok));
        Assert.That(memory.DevicePagesFreed, Is.EqualTo(528), "cfree == calloc once everything came back");
        Assert.That(memory.DeviceFreeListLengths, Is.EqualTo((1024, 2)));
        AssertData(thp, 512);
        AssertData(small, 16);
        file.Detach();
        Assert.That(memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void PagesFreedByRemoval_AreNotCountedAsCfree()
    {
        var memory = new TestHmmDevmem();
        var file = new TestHmmFile(memory);
        Assert.That(file.Attach(_device, _process), Is.EqualTo(Errno.Ok));
        ulong buf = MapWritten(16);
        Assert.That(file.MigrateToDevice(buf, buf + (16 * P), out _), Is.EqualTo(Errno.Ok));

        Assert.That(memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));

        Assert.That(memory.DevicePagesAllocated, Is.EqualTo(16));
        Assert.That(memory.DevicePagesFreed, Is.Zero, "freed while their chunk was being removed");
        Assert.That(memory.DeviceFreeListLengths, Is.EqualTo((0, 0)));
        AssertData(buf, 16);
        file.Detach();
    }

    [Test]
    public void WithoutSplitFolios_ABasePageHotAddsAChunk_RatherThanSplittingAFreeFolio()
    {
        var memory = new NoSplitDevmem();
        var file = new NoSplitFile(memory);
        Assert.That(file.Attach(_device, _process), Is.EqualTo(Errno.Ok));
        Assert.That(memory.DeviceChunkCount, Is.Zero, "no initial chunk declared");
        ulong thp = MapWritten(512, Advice.HugePage);
        Assume.That(_process.Mm.EntryAt(thp).IsHuge, Is.True);
        Assert.That(file.MigrateToDevice(thp, thp + Page.PmdSize, out _), Is.EqualTo(Errno.Ok));
        Assert.That(file.MigrateToSystem(thp, thp + Page.PmdSize, out _), Is.EqualTo(Errno.Ok));
        Assert.That(memory.DeviceFreeListLengths, Is.EqualTo((0, 1)), "the folio is back on the folio list");

        ulong small = MapWritten(1);
        Assert.That(file.MigrateToDevice(small, small + P, out long moved), Is.EqualTo(Errno.Ok));

        Assert.That(moved, Is.EqualTo(1));
        Assert.That(memory.DeviceChunkCount, Is.EqualTo(2), "a base-page chunk was hot-added");
        Assert.That(memory.DeviceFreeListLengths, Is.EqualTo((511, 1)), "the free folio is intact");
        Assert.That(file.MigrateToSystem(small, small + P, out _), Is.EqualTo(Errno.Ok));
        AssertData(small, 1);
        file.Detach();
        Assert.That(memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void InitialChunksOfADriversOwnMemory_ArePluggedByAttach()
    {
        var driver = new OwnInitialDriver();
        Assert.That(driver.Attach(_device, _process), Is.EqualTo(Errno.Ok));
        Assert.That(driver.DeviceChunkCount, Is.EqualTo(1));
        Assert.That(driver.DeviceFreeListLengths, Is.EqualTo((0, 1)), "the default layout: one 2 MiB folio, split on demand");

        ulong buf = MapWritten(8);
        Assert.That(driver.MigrateToDevice(buf, buf + (8 * P), out long moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(8));
        Assert.That(driver.DeviceChunkCount, Is.EqualTo(1), "the base pages split the initial folio");
        Assert.That(driver.DeviceFreeListLengths, Is.EqualTo((504, 0)));
        Assert.That(driver.MigrateToSystem(buf, buf + (8 * P), out _), Is.EqualTo(Errno.Ok));
        AssertData(buf, 8);
        driver.Detach();
        Assert.That(driver.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void Fault_WalksInBatchesOfFaultBatchPages()
    {
        var file = new TestHmmFile(new TestHmmDevmem());
        Assert.That(file.Attach(_device, _process), Is.EqualTo(Errno.Ok));
        ulong buf = MapWritten(100);

        Assert.That(file.Fault(buf, buf + (100 * P), write: false), Is.EqualTo(Errno.Ok));

        Assert.That(file.Pieces, Is.EqualTo(new[] { 32, 32, 32, 4 }), "dmirror_fault's pfns[32]");
        Assert.That(file.PagesMirrored, Is.EqualTo(100));
        file.Detach();
        Assert.That(file.Memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void AFaultFailingPartWay_LeavesTheEarlierBatchesMapped()
    {
        var file = new TestHmmFile(new TestHmmDevmem());
        Assert.That(file.Attach(_device, _process), Is.EqualTo(Errno.Ok));
        ulong buf = MapWritten(64);
        _process.Munmap(buf + (40 * P), P);   // a hole in the second batch

        Assert.That(file.Fault(buf, buf + (64 * P), write: false), Is.EqualTo(Errno.EFAULT));

        Assert.That(file.Pieces, Is.EqualTo(new[] { 32 }), "the first batch was programmed before the second failed");
        Assert.That(file.DeviceTable.Translate(buf + (31 * P), write: false, out _), Is.EqualTo(DeviceMmuResult.Hit));
        Assert.That(file.DeviceTable.Translate(buf + (32 * P), write: false, out _), Is.Not.EqualTo(DeviceMmuResult.Hit));
        file.Detach();
        Assert.That(file.Memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void Snapshot_ReportsWithoutFaultingOrProgramming()
    {
        var file = new TestHmmFile(new TestHmmDevmem());
        Assert.That(file.Attach(_device, _process), Is.EqualTo(Errno.Ok));
        ulong buf = MapWritten(40);
        ulong untouched = _process.Mmap(8 * P, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        var words = new ulong[40];

        Assert.That(file.Snapshot(buf, buf + (40 * P), words), Is.EqualTo(Errno.Ok));

        Assert.That(words.All(w => HmmPfn.IsValid(w) && (w & HmmPfn.Write) != 0), Is.True, "every written page, writable");
        Assert.That(file.Pieces, Is.Empty, "[OnMirrorFault] never ran");
        Assert.That(file.PagesMirrored, Is.Zero);
        Assert.That(file.DeviceTable.Translate(buf, write: false, out _), Is.Not.EqualTo(DeviceMmuResult.Hit), "nothing programmed");

        var none = new ulong[8];
        Assert.That(file.Snapshot(untouched, untouched + (8 * P), none), Is.EqualTo(Errno.Ok));
        Assert.That(none.Any(HmmPfn.IsValid), Is.False, "nothing faulted in");
        Assert.That(_process.Mm.EntryAt(untouched).Kind, Is.EqualTo(PteKind.None));
        file.Detach();
        Assert.That(file.Memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void Snapshot_SeesTheDevicesOwnPrivatePages()
    {
        var file = new TestHmmFile(new TestHmmDevmem());
        Assert.That(file.Attach(_device, _process), Is.EqualTo(Errno.Ok));
        ulong buf = MapWritten(4);
        Assert.That(file.MigrateToDevice(buf, buf + (4 * P), out _), Is.EqualTo(Errno.Ok));
        var words = new ulong[4];

        Assert.That(file.Snapshot(buf, buf + (4 * P), words), Is.EqualTo(Errno.Ok));

        Assert.That(words.Select(w => file.Memory.DeviceChunkOf(HmmPfn.ToPfn(w)) != null), Is.All.True, "dev_private_owner is the device: its pages are reported");
        Assert.That(file.MigrateToSystem(buf, buf + (4 * P), out _), Is.EqualTo(Errno.Ok));
        AssertData(buf, 4);
        file.Detach();
        Assert.That(file.Memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void Snapshot_RejectsWhatItCannotReport()
    {
        var file = new TestHmmFile(new TestHmmDevmem());
        var words = new ulong[4];
        Assert.That(file.Snapshot(0x10000, 0x10000 + (4 * P), words), Is.EqualTo(Errno.EINVAL), "not attached");
        Assert.That(file.Attach(_device, _process), Is.EqualTo(Errno.Ok));
        ulong buf = MapWritten(4);

        Assert.That(file.Snapshot(buf + 8, buf + (4 * P), words), Is.EqualTo(Errno.EINVAL), "unaligned");
        Assert.That(file.Snapshot(buf, buf, words), Is.EqualTo(Errno.EINVAL), "empty");
        Assert.That(file.Snapshot(buf, buf + (8 * P), words), Is.EqualTo(Errno.EINVAL), "span shorter than the range");
        // No VMA and nothing requested: hmm_range_fault succeeds with HMM_PFN_ERROR words (hmm_vma_walk_hole).
        Assert.That(file.Snapshot(0x10_0000_0000, 0x10_0000_0000 + P, words), Is.EqualTo(Errno.Ok));
        Assert.That(words[0] & HmmPfn.Error, Is.Not.Zero);
        file.Detach();
        Assert.That(file.Memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void Snapshot_WorksWhateverTheFaultPathsSyncMode()
    {
        var driver = new RangeLockSnapshotDriver();
        Assert.That(driver.Attach(_device, _process), Is.EqualTo(Errno.Ok));
        ulong buf = MapWritten(3);
        var words = new ulong[3];

        Assert.That(driver.Snapshot(buf, buf + (3 * P), words), Is.EqualTo(Errno.Ok));

        Assert.That(words.All(HmmPfn.IsValid), Is.True);
        Assert.That(driver.PagesMirrored, Is.Zero);
        driver.Detach();
    }

    [Test]
    public void ConfiguredCoherent_HotAddsCoherentChunksOfTheChosenSize_AndMigratesIntoThem()
    {
        var memory = new TestHmmDevmem();
        Assert.That(memory.DeviceKind, Is.EqualTo(DevicePageKind.Private), "the declared kind by default");
        memory.ConfigureDeviceMemory(DevicePageKind.Coherent, 2L << 20, maxChunks: 1);
        var file = new TestHmmFile(memory);
        Assert.That(file.Attach(_device, _process), Is.EqualTo(Errno.Ok));

        Assert.That(memory.DeviceChunkCount, Is.EqualTo(1));
        Assert.That(memory.DeviceChunk(0).Kind, Is.EqualTo(DevicePageKind.Coherent));
        Assert.That(memory.DeviceChunk(0).PageCount, Is.EqualTo(512UL), "2 MiB, not the declared 4 MiB");
        Assert.That(memory.DeviceChunkSize, Is.EqualTo(2L << 20));
        Assert.That(memory.DeviceChunkLimit, Is.EqualTo(1));

        ulong buf = MapWritten(8);
        Assert.That(file.MigrateToDevice(buf, buf + (8 * P), out long moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(8));
        Assert.That(_process.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.Present), "coherent memory is CPU-mapped, not a device-private entry");
        AssertData(buf, 8);
        Assert.That(file.MigrateToSystem(buf, buf + (8 * P), out moved), Is.EqualTo(Errno.Ok), "selected as DeviceCoherent");
        Assert.That(moved, Is.EqualTo(8));
        Assert.That(memory.DevicePagesFreed, Is.EqualTo(8));

        // A folio would need a second chunk: the limit of one refuses it (the per-page fallback applies).
        ulong thp = MapWritten(512, Advice.HugePage);
        Assume.That(_process.Mm.EntryAt(thp).IsHuge, Is.True);
        Assert.That(file.MigrateToDevice(thp, thp + Page.PmdSize, out moved), Is.EqualTo(Errno.Ok));
        Assert.That(memory.DeviceChunkCount, Is.EqualTo(1));
        Assert.That(file.LargeAllocationFallbacks, Is.EqualTo(1));
        Assert.That(moved, Is.EqualTo(512), "the initial chunk's 512 base pages");
        Assert.That(file.MigrateToSystem(thp, thp + Page.PmdSize, out _), Is.EqualTo(Errno.Ok));
        AssertData(thp, 512);
        file.Detach();
        Assert.That(memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void ConfigureDeviceMemory_RefusesBadValues_AndAnyChangeOnceAChunkIsPlugged()
    {
        var memory = new TestHmmDevmem();
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.ConfigureDeviceMemory(DevicePageKind.P2PDma, 2L << 20, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.ConfigureDeviceMemory(DevicePageKind.Private, 4096, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.ConfigureDeviceMemory(DevicePageKind.Private, 2L << 20, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.ConfigureDeviceMemory(DevicePageKind.Private, 2L << 20, TestHmmDevmem.DeviceMaxChunks + 1));
        Assert.That(memory.DeviceChunkSize, Is.EqualTo(TestHmmDevmem.DeviceChunkBytes), "nothing changed");

        var file = new TestHmmFile(memory);
        Assert.That(file.Attach(_device, _process), Is.EqualTo(Errno.Ok));
        Assert.Throws<InvalidOperationException>(() => memory.ConfigureDeviceMemory(DevicePageKind.Coherent, 2L << 20, 1));
        Assert.That(memory.DeviceKind, Is.EqualTo(DevicePageKind.Private));
        file.Detach();
        Assert.That(memory.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
        memory.ConfigureDeviceMemory(DevicePageKind.Coherent, 2L << 20, 1);   // nothing plugged any more
        Assert.That(memory.DeviceKind, Is.EqualTo(DevicePageKind.Coherent));
    }
}
