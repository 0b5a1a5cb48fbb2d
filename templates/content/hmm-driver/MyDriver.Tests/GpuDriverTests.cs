using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using NUnit.Framework;

namespace MyDriver.Tests;

/// <summary>GpuDriver on a simulated machine: the device sees what the CPU wrote, and the CPU what the device wrote.</summary>
public sealed class GpuDriverTests
{
    private const ulong P = Page.Size;
    private Machine _machine = null!;
    private Process _process = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 128L << 20 });
        _process = _machine.CreateProcess("app");
    }

    [TearDown]
    public void TearDown()
    {
        _process.Exit();
        _machine.CheckInvariants();
        _machine.Dispose();
    }

    private ulong MapWritten(int pages)
    {
        ulong map = _process.Mmap(((ulong)pages * P) + Page.PmdSize, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        ulong buf = (map + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        _process.Madvise(buf, (ulong)pages * P, Advice.NoHugePage);
        for (int i = 0; i < pages; i++) _process.Store(buf + ((ulong)i * P), 0xA000UL + (ulong)i);
        return buf;
    }

    private (GpuDriver Driver, SimDevice Device) Attached()
    {
        var device = new SimDevice(_machine, "gpu0", new SimDeviceOptions { FaultBufferEntries = 1024 });
        var driver = new GpuDriver();
        Assert.That(driver.Attach(device, _process), Is.EqualTo(Errno.Ok));
        return (driver, device);
    }

    [Test]
    public void MirrorFault_MapsTheBytesTheCpuWrote()
    {
        ulong buf = MapWritten(8);
        var (driver, device) = Attached();

        Assert.That(driver.Fault(buf, buf + (8 * P), write: false), Is.EqualTo(Errno.Ok));

        var bytes = new byte[8];
        for (int i = 0; i < 8; i++)
        {
            Assert.That(driver.DeviceTable.Lookup(buf + ((ulong)i * P), out DeviceTranslation t), Is.True, $"page {i} mirrored");
            Assert.That(t.Writable, Is.True, "hmm_range_fault reports the CPU PTE's write permission, even to a read fault");
            device.Copy.Read(t.Frame, 0, bytes);
            Assert.That(BitConverter.ToUInt64(bytes), Is.EqualTo(0xA000UL + (ulong)i), $"page {i} seen by the device");
        }
        Assert.That(driver.PagesProgrammed, Is.EqualTo(8), "[OnMirrorFault] saw every page");
        driver.Detach();
        driver.RemoveDeviceMemory();
    }

    [Test]
    public void DeviceThreads_ReadThroughTheFaultBuffer_AndWritesMigrateToDeviceMemory()
    {
        ulong buf = MapWritten(20);
        var (driver, device) = Attached();
        var ops = new DeviceOp[16];
        for (int i = 0; i < 8; i++) ops[i] = new DeviceOp(buf + ((ulong)i * P), DeviceAccess.Read);
        // The writes start four pages after the reads so that they coalesce into a fault range of their own.
        for (int i = 8; i < 16; i++) ops[i] = new DeviceOp(buf + ((ulong)(i + 4) * P) + 8, DeviceAccess.Write, 0x5000UL + (ulong)i);
        device.Executor.LaunchOnePerThread(driver.Instance, client: 1, ops);

        driver.RunToCompletion();

        Assert.That(device.Executor.Count(DeviceThreadState.Done), Is.EqualTo(16));
        for (int t = 0; t < 8; t++) Assert.That(device.Executor.ResultOf(t), Is.EqualTo(0xA000UL + (ulong)t));
        Assert.That(driver.PagesMigratedToDevice, Is.EqualTo(8), "device writes migrated by the fault policy");
        Assert.That(_process.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.Present), "reads were mapped in place");
        Assert.That(_process.Mm.EntryAt(buf + (12 * P)).Kind, Is.EqualTo(PteKind.DevicePrivate), "written pages live in device memory");
        for (int i = 8; i < 16; i++) Assert.That(_process.Load<ulong>(buf + ((ulong)(i + 4) * P) + 8), Is.EqualTo(0x5000UL + (ulong)i), "the CPU reads what the device wrote");
        Assert.That(_process.Mm.EntryAt(buf + (12 * P)).Kind, Is.EqualTo(PteKind.Present), "the CPU touch migrated the page back (migrate_to_ram)");
        driver.Detach();
        driver.RemoveDeviceMemory();
    }

    [Test]
    public void CpuWrite_InvalidatesTheMirror()
    {
        ulong buf = MapWritten(1);
        var (driver, _) = Attached();
        Assert.That(driver.Fault(buf, buf + P, write: false), Is.EqualTo(Errno.Ok));

        _process.Madvise(buf, P, Advice.DontNeed);

        Assert.That(driver.DeviceTable.Lookup(buf, out _), Is.False, "the notifier cleared the device mapping");
        Assert.That(driver.RangesInvalidated, Is.GreaterThanOrEqualTo(1));
        driver.Detach();
        driver.RemoveDeviceMemory();
    }

    [Test]
    public void FaultOnUnmappedMemory_IsEfault_AndMapsNothing()
    {
        ulong buf = MapWritten(1);
        _process.Munmap(buf, P);
        var (driver, _) = Attached();

        Assert.That(driver.Fault(buf, buf + P, write: false), Is.EqualTo(Errno.EFAULT));
        Assert.That(driver.PagesMirrored, Is.Zero);
        Assert.That(new GpuDriver().Fault(buf, buf + P, write: false), Is.EqualTo(Errno.EINVAL), "not attached");
        driver.Detach();
        driver.RemoveDeviceMemory();
    }
}
