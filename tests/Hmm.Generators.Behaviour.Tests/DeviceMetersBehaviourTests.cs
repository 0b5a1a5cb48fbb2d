using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Hmm.Generators.Behaviour.Tests.Drivers;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Telemetry;
using NUnit.Framework;

namespace Hmm.Generators.Behaviour.Tests;

/// <summary>
/// The generated migration feeds the device's telemetry (hmm.device.pages_migrated_to_device /
/// _from_device): to device, to system, the default migrate_to_ram and the eviction of device
/// memory removal, each counted once and equal to the driver's own counters.
/// </summary>
public sealed class DeviceMetersBehaviourTests
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

    private ulong MapWritten(int pages, Advice advice)
    {
        ulong len = (ulong)pages * P;
        ulong map = _process.Mmap(len + Page.PmdSize, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        ulong buf = (map + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        _process.Madvise(buf, len, advice);
        for (int i = 0; i < pages; i++) _process.Store(buf + ((ulong)i * P), 0xE000UL + (ulong)i);
        return buf;
    }

    [Test]
    public void EveryGeneratedMigration_IsCountedOnTheDeviceMeters_AndPublished()
    {
        string name = "meters-" + Guid.NewGuid().ToString("N");
        var published = new ConcurrentDictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == DeviceMeters.MeterName) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == "device" && (string?)tag.Value == name) published.AddOrUpdate(instrument.Name, value, (_, v) => v + value);
        });
        listener.Start();
        ulong buf = MapWritten(16, Advice.NoHugePage);
        var device = new SimDevice(_machine, name);
        var driver = new DevmemDriver();
        Assert.That(driver.Attach(device, _process), Is.EqualTo(Errno.Ok));

        driver.MigrateToDevice(buf, buf + (16 * P));
        Assert.That(device.Meters.PagesMigratedToDevice, Is.EqualTo(16), "to device");
        driver.MigrateToSystem(buf, buf + (4 * P));
        Assert.That(device.Meters.PagesMigratedFromDevice, Is.EqualTo(4), "to system");
        Assert.That(_process.Load<ulong>(buf + (9 * P)), Is.EqualTo(0xE009UL));
        Assert.That(device.Meters.PagesMigratedFromDevice, Is.EqualTo(5), "the default migrate_to_ram");
        Assert.That(driver.PagesMigratedToSystem, Is.EqualTo(5), "the driver's own counter agrees");
        Assert.That(driver.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
        Assert.That(device.Meters.PagesMigratedFromDevice, Is.EqualTo(16), "the eviction of the 11 pages still on the device");

        Assert.That(published["hmm.device.pages_migrated_to_device"], Is.EqualTo(16));
        Assert.That(published["hmm.device.pages_migrated_from_device"], Is.EqualTo(16));
        for (int i = 0; i < 16; i++) Assert.That(_process.Load<ulong>(buf + ((ulong)i * P)), Is.EqualTo(0xE000UL + (ulong)i));
        driver.Detach();
    }

    [Test]
    public void A2MiBFolio_Counts512_AndNothingIsCountedForWhatDidNotMove()
    {
        ulong thp = MapWritten(Page.PmdPages, Advice.HugePage);
        var device = new SimDevice(_machine, "meters-thp");
        var driver = new DevmemDriver();
        Assert.That(driver.MigrateToDevice(thp, thp + Page.PmdSize), Is.EqualTo(Errno.EINVAL), "not attached");
        Assert.That(device.Meters.PagesMigratedToDevice, Is.Zero);
        Assert.That(driver.Attach(device, _process), Is.EqualTo(Errno.Ok));

        driver.MigrateToDevice(thp, thp + Page.PmdSize);
        Assert.That(driver.MigrateToSystem(thp, thp + Page.PmdSize, out long back), Is.EqualTo(Errno.Ok));

        Assert.That(device.Meters.PagesMigratedToDevice, Is.EqualTo(Page.PmdPages));
        Assert.That(device.Meters.PagesMigratedFromDevice, Is.EqualTo(back).And.EqualTo(Page.PmdPages));
        Assert.That(driver.MigrateToSystem(thp, thp + Page.PmdSize, out long none), Is.EqualTo(Errno.Ok));
        Assert.That(none, Is.Zero);
        Assert.That(device.Meters.PagesMigratedFromDevice, Is.EqualTo(Page.PmdPages), "nothing was on the device any more");
        Assert.That(driver.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));
        Assert.That(device.Meters.PagesMigratedFromDevice, Is.EqualTo(Page.PmdPages), "an empty removal evicts nothing");
        driver.Detach();
    }
}
