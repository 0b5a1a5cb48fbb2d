using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.DeviceMemory;

public class MigrationSmokeTests
{
    [Test]
    public void PrivateRoundTripThroughCpuFault()
    {
        using var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong buf = p.Mmap(16 * 4096, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        for (int i = 0; i < 16; i++) p.Store(buf + (ulong)i * 4096 + 8, 1000 + i);
        Assert.That(dev.MigrateToDevice(p, buf, 16), Is.EqualTo(16));
        Assert.That(p.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.DevicePrivate));
        machine.CheckInvariants();
        Assert.That(p.Load<int>(buf + 8), Is.EqualTo(1000));
        Assert.That(p.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(dev.MigrateToRamCalls, Is.EqualTo(1));
        Assert.That(dev.MigrateToSystem(p, buf, 16), Is.EqualTo(15));
        for (int i = 0; i < 16; i++) Assert.That(p.Load<int>(buf + (ulong)i * 4096 + 8), Is.EqualTo(1000 + i));
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        machine.CheckInvariants();
        p.Exit();
        machine.CheckInvariants();
        Assert.That(machine.UsedPages, Is.Zero);
    }

    [Test]
    public void ForkThenMunmapAndThpAndCoherent()
    {
        using var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
        var dev = new TestDevice(machine, DevicePageKind.Private) { Compound = true };
        var coh = new TestDevice(machine, DevicePageKind.Coherent, name: "coh");
        var p = machine.CreateProcess("app");
        ulong buf = p.Mmap(4 << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        p.Madvise(buf, 4 << 20, Advice.HugePage);
        p.Store(buf + 5, (byte)7);
        Assert.That(p.Mm.EntryAt(buf).IsHuge, Is.True);
        Assert.That(dev.MigrateToDevice(p, buf, 512), Is.EqualTo(512));
        Assert.That(p.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.DevicePrivate));
        Assert.That(p.Mm.EntryAt(buf).IsHuge, Is.True);
        machine.CheckInvariants();
        var child = p.Fork();
        child.Store(buf + 6, (byte)9);
        Assert.That(p.Load<byte>(buf + 5), Is.EqualTo(7));
        Assert.That(p.Load<byte>(buf + 6), Is.EqualTo(0));
        Assert.That(child.Load<byte>(buf + 6), Is.EqualTo(9));
        machine.CheckInvariants();
        child.Exit();
        ulong b2 = buf + (2 << 20);
        p.Store(b2 + 100, 55L);
        Assert.That(coh.MigrateToDevice(p, b2, 4), Is.EqualTo(4));
        Assert.That(p.Load<long>(b2 + 100), Is.EqualTo(55L));
        using (p.PinUserPages(b2, 1, write: true, longTerm: true)) { Assert.That(p.Load<long>(b2 + 100), Is.EqualTo(55L)); }
        machine.CheckInvariants();
        p.Munmap(buf, 4 << 20);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        Assert.That(coh.PageFrees, Is.EqualTo(coh.Allocations));
        machine.CheckInvariants();
        p.Exit();
        machine.CheckInvariants();
        Assert.That(machine.UsedPages, Is.Zero);
    }
}
