using Hmm.Generators.Behaviour.Tests.Drivers;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using NUnit.Framework;

namespace Hmm.Generators.Behaviour.Tests;

/// <summary>HmmDriver.RangedNotifier: the generated Attach(device, process, start, end) watches one range only.</summary>
public sealed class RangedNotifierBehaviourTests
{
    private const ulong P = Page.Size;

    [Test]
    public void RangedAttach_SeesInvalidationsOfItsRangeOnly_AndMirrorsIt()
    {
        using var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
        var process = machine.CreateProcess("app");
        ulong buf = process.Mmap(32 * P, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        for (int i = 0; i < 32; i++) process.Store(buf + (ulong)i * P, (ulong)i);
        var driver = new RangedMirror();
        Assert.That(driver.Attach(new SimDevice(machine, "nic"), process, buf + 16 * P, buf + 32 * P), Is.EqualTo(Errno.Ok));
        Assert.That(driver.Notifier.Start, Is.EqualTo(buf + 16 * P));

        Assert.That(driver.Fault(buf + 16 * P, buf + 20 * P, write: true), Is.EqualTo(Errno.Ok));
        Assert.That(driver.PagesMirrored, Is.EqualTo(4));
        process.Madvise(buf, 8 * P, Advice.DontNeed);           // outside: never reaches the driver
        Assert.That(driver.SeenInvalidations, Is.Zero);
        process.Madvise(buf + 16 * P, P, Advice.DontNeed);      // inside
        Assert.That(driver.SeenInvalidations, Is.EqualTo(1));
        Assert.That(driver.LowestSeen, Is.EqualTo(buf + 16 * P));
        Assert.That(driver.DeviceTable.Lookup(buf + 16 * P, out _), Is.False, "the trampoline cleared the invalidated page");
        Assert.That(driver.DeviceTable.Lookup(buf + 17 * P, out _), Is.True);
        Assert.That(driver.OwnEventsSkipped, Is.Zero, "FilterOwnMigrations = false filters nothing");

        driver.Detach();
        process.Exit();
        machine.CheckInvariants();
    }

    [Test]
    public void RangedAttach_RefusesAnEmptyOrUnalignedRange_AndASecondAttach()
    {
        using var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
        var process = machine.CreateProcess("app");
        var device = new SimDevice(machine, "nic");
        var driver = new RangedMirror();
        Assert.That(driver.Attach(device, process, 0x10000, 0x10000), Is.EqualTo(Errno.EINVAL));
        Assert.That(driver.Attach(device, process, 0x10001, 0x20000), Is.EqualTo(Errno.EINVAL));
        Assert.That(driver.IsAttached, Is.False);
        Assert.That(driver.Attach(device, process, 0x10000, 0x20000), Is.EqualTo(Errno.Ok));
        Assert.That(driver.Attach(device, process, 0x10000, 0x20000), Is.EqualTo(Errno.EBUSY));
        driver.Detach();
        process.Exit();
        machine.CheckInvariants();
    }
}
