using Hmm.Generators.Behaviour.Tests.Drivers;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using NUnit.Framework;

namespace Hmm.Generators.Behaviour.Tests;

/// <summary>Generated device memory, migration, migrate_to_ram, removal, exclusive access and fault-buffer service.</summary>
public sealed class DeviceMemoryBehaviourTests
{
    private const ulong P = Page.Size;
    private Machine _machine = null!;
    private Process _process = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 256L << 20 });
        _process = _machine.CreateProcess("app");
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
        for (int i = 0; i < pages; i++) _process.Store(buf + ((ulong)i * P), 0xB000UL + (ulong)i);
        return buf;
    }

    private void AssertData(ulong buf, int pages)
    {
        for (int i = 0; i < pages; i++)
            Assert.That(_process.Load<ulong>(buf + ((ulong)i * P)), Is.EqualTo(0xB000UL + (ulong)i), $"page {i}");
    }

    private T Attached<T>(T driver, Func<T, SimDevice, Process, Errno> attach)
    {
        Assert.That(attach(driver, new SimDevice(_machine, typeof(T).Name), _process), Is.EqualTo(Errno.Ok));
        return driver;
    }

    [Test]
    public void MigrationBothWays_MovesEveryPage_WithItsData()
    {
        ulong buf = MapWritten(64);
        var driver = Attached(new DevmemDriver(), (d, s, p) => d.Attach(s, p));

        Assert.That(driver.MigrateToDevice(buf, buf + (64 * P), out long moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(64));
        Assert.That(Enumerable.Range(0, 64).Select(i => _process.Mm.EntryAt(buf + ((ulong)i * P)).Kind).ToArray(), Is.All.EqualTo(PteKind.DevicePrivate));
        Assert.That(driver.DeviceChunkCount, Is.EqualTo(1), "one 2 MiB chunk hot-added on demand");
        Assert.That(driver.Copied, Is.EqualTo(64), "one batched [CopyPages] call with 64 copies");

        Assert.That(driver.MigrateToSystem(buf, buf + (64 * P), out moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(64));
        for (int i = 0; i < 64; i++) Assert.That(_process.Mm.EntryAt(buf + ((ulong)i * P)).Kind, Is.EqualTo(PteKind.Present));
        AssertData(buf, 64);
        Assert.That(Interlocked.Read(ref driver.Freed), Is.EqualTo(64), "every device page came back through page_free");
        Assert.That(driver.DevicePagesFree, Is.EqualTo(512));
        driver.Detach();
        Assert.That(driver.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
    }

    [Test]
    public void ThpMigratesAsOneDeviceFolio_AndBack()
    {
        ulong buf = MapWritten(512, Advice.HugePage);
        Assume.That(_process.Mm.EntryAt(buf).IsHuge, Is.True);
        var driver = Attached(new DevmemDriver(), (d, s, p) => d.Attach(s, p));

        Assert.That(driver.MigrateToDevice(buf, buf + Page.PmdSize, out long moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(512));
        Assert.That(driver.Copied, Is.EqualTo(1), "one 2 MiB copy");
        Assert.That(driver.LargeAllocationFallbacks, Is.Zero);
        Assert.That(driver.MigrateToSystem(buf, buf + Page.PmdSize, out moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(512));
        Assert.That(_process.Mm.EntryAt(buf).IsHuge, Is.True, "back as a THP");
        AssertData(buf, 512);
        driver.Detach();
        driver.RemoveDeviceMemory();
    }

    [Test]
    public void LargeAllocationFailure_FallsBackToBasePages()
    {
        ulong small = MapWritten(1);
        ulong thp = MapWritten(512, Advice.HugePage);
        var driver = Attached(new TinyDevmemDriver(), (d, s, p) => d.Attach(s, p));
        Assert.That(driver.MigrateToDevice(small, small + P, out long moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(1), "the only chunk's folio is now split");

        Assert.That(driver.MigrateToDevice(thp, thp + Page.PmdSize, out moved), Is.EqualTo(Errno.Ok));

        Assert.That(driver.LargeAllocationFallbacks, Is.EqualTo(1));
        Assert.That(moved, Is.EqualTo(511), "511 base pages were left; the last page stays in system memory");
        Assert.That(_process.Mm.EntryAt(thp + (511 * P)).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(_process.Mm.EntryAt(thp).Kind, Is.EqualTo(PteKind.DevicePrivate));
        AssertData(thp, 512);
        AssertData(small, 1);
        driver.Detach();
        driver.RemoveDeviceMemory();
    }

    [Test]
    public void DeviceMemoryExhaustion_LeavesPagesInSystemMemory()
    {
        ulong buf = MapWritten(16);
        var driver = Attached(new TinyDevmemDriver(), (d, s, p) => d.Attach(s, p));
        Assert.That(driver.MigrateToDevice(buf, buf + (16 * P)), Is.EqualTo(Errno.Ok));
        Assert.That(driver.TryAllocateDevicePage(Page.PmdOrder, out _), Is.False, "MaxChunks = 1 and its folio is split");
        driver.Detach();
        driver.RemoveDeviceMemory();
    }

    [Test]
    public void CpuTouchOnAMigratedPage_MigratesItBack_ThroughTheDefaultMigrateToRam()
    {
        ulong buf = MapWritten(8);
        var driver = Attached(new DevmemDriver(), (d, s, p) => d.Attach(s, p));
        driver.MigrateToDevice(buf, buf + (8 * P));

        Assert.That(_process.Load<ulong>(buf + (3 * P)), Is.EqualTo(0xB003UL));

        Assert.That(_process.Mm.EntryAt(buf + (3 * P)).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(_process.Mm.EntryAt(buf + (2 * P)).Kind, Is.EqualTo(PteKind.DevicePrivate), "only the faulting page moved");
        Assert.That(driver.PagesMigratedToSystem, Is.EqualTo(1));
        Assert.That(driver.OwnEventsSkipped, Is.GreaterThan(0), "own MIGRATE events were filtered (HMM-R19)");
        driver.Detach();
        driver.RemoveDeviceMemory();
        AssertData(buf, 8);
    }

    [Test]
    public void DeviceMemoryRemoval_EvictsEveryPage_WithItsData()
    {
        ulong buf = MapWritten(32);
        var driver = Attached(new DevmemDriver(), (d, s, p) => d.Attach(s, p));
        driver.MigrateToDevice(buf, buf + (32 * P));

        Assert.That(driver.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));

        Assert.That(driver.DeviceChunkCount, Is.Zero);
        for (int i = 0; i < 32; i++) Assert.That(_process.Mm.EntryAt(buf + ((ulong)i * P)).Kind, Is.EqualTo(PteKind.Present));
        AssertData(buf, 32);
        Assert.That(driver.MigrateToDevice(buf, buf + P, out long moved), Is.EqualTo(Errno.Ok), "a new chunk is hot-added after removal");
        Assert.That(moved, Is.EqualTo(1));
        driver.Detach();
        driver.RemoveDeviceMemory();
    }

    [Test]
    public void MakeExclusive_MapsAtomic_AndACpuTouchRevokesIt()
    {
        ulong buf = MapWritten(2);
        var driver = Attached(new GpuDriver(), (d, s, p) => d.Attach(s, p));

        Assert.That(driver.MakeExclusive(buf, buf + (2 * P)), Is.EqualTo(Errno.Ok));

        Assert.That(driver.PagesExclusive, Is.EqualTo(2));
        Assert.That(_process.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.DeviceExclusive));
        Assert.That(driver.DeviceTable.Lookup(buf, out var t) && t.Atomic, Is.True);
        Assert.That(_process.Load<ulong>(buf), Is.EqualTo(0xB000UL), "the CPU access restores the entry");
        Assert.That(driver.DeviceTable.Lookup(buf, out _), Is.False, "and revokes the device's atomic mapping");
        Assert.That(driver.DeviceTable.Lookup(buf + P, out t) && t.Atomic, Is.True, "the untouched page stays exclusive");
        driver.Detach();
        driver.RemoveDeviceMemory();
    }

    [Test]
    public void FaultBuffer_ServicesLoadsStoresAndAtomics_ThenReplays()
    {
        ulong buf = MapWritten(12);
        var device = new SimDevice(_machine, "gpu", new SimDeviceOptions { FaultBufferEntries = 64 });
        var driver = new GpuDriver { MigrateOnWrite = true };
        Assert.That(driver.Attach(device, _process), Is.EqualTo(Errno.Ok));
        var ops = new DeviceOp[8];
        for (int i = 0; i < 4; i++) ops[i] = new DeviceOp(buf + ((ulong)i * P), DeviceAccess.Read);
        // Writes four pages away from the reads, so they coalesce into a range of their own.
        for (int i = 4; i < 8; i++) ops[i] = new DeviceOp(buf + ((ulong)(i + 4) * P) + 8, DeviceAccess.Write, 0x77UL + (ulong)i);
        device.Executor.LaunchOnePerThread(driver.Instance, client: 1, ops);

        driver.RunToCompletion();

        Assert.That(device.Executor.Count(DeviceThreadState.Done), Is.EqualTo(8));
        for (int t = 0; t < 4; t++) Assert.That(device.Executor.ResultOf(t), Is.EqualTo(0xB000UL + (ulong)t));
        Assert.That(driver.PagesMigratedToDevice, Is.EqualTo(4), "write faults migrated here by the [FaultPolicy]");
        for (int i = 4; i < 8; i++) Assert.That(_process.Load<ulong>(buf + ((ulong)(i + 4) * P) + 8), Is.EqualTo(0x77UL + (ulong)i));
        Assert.That(_process.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.Present), "reads were mapped in place");
        Assert.That(device.Meters.Replays, Is.GreaterThanOrEqualTo(1));
        Assert.That(driver.Cancelled, Is.Zero);
        driver.Detach();
        driver.RemoveDeviceMemory();
    }

    [Test]
    public void FaultBuffer_CancelsWhatCannotBeServiced()
    {
        ulong buf = MapWritten(1);
        _process.Munmap(buf, P);
        var device = new SimDevice(_machine, "gpu", new SimDeviceOptions { FaultBufferEntries = 64 });
        var driver = new GpuDriver();
        driver.Attach(device, _process);
        device.Executor.LaunchOnePerThread(driver.Instance, 1, [new DeviceOp(buf, DeviceAccess.Read)]);
        device.Run();

        Assert.That(driver.ServiceFaults(), Is.EqualTo(1));

        Assert.That(device.Executor.StateOf(0), Is.EqualTo(DeviceThreadState.Failed));
        Assert.That(driver.Cancelled, Is.EqualTo(1));
        Assert.That(device.Meters.Replays, Is.Zero);
        driver.Detach();
    }

    [Test]
    public void FaultBufferDriver_RefusesADeviceWithASmallerBuffer()
    {
        var device = new SimDevice(_machine, "gpu", new SimDeviceOptions { FaultBufferEntries = 16 });
        Assert.That(new GpuDriver().Attach(device, _process), Is.EqualTo(Errno.EINVAL));
    }
}
