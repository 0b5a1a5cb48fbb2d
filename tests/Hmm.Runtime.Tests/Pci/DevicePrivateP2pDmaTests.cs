using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Pci;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Pci;

/// <summary>
/// The proposed get_dma_pfn_for_device hook (drivers.md B.13): an importer asks the exporter for the
/// BAR address of a private page; every reason to refuse falls back (the caller migrates instead).
/// Also set_page_dirty, which an importer calls when it drops a writable DMA mapping.
/// </summary>
public sealed class DevicePrivateP2pDmaTests
{
    private const ushort Nvidia = 0x10de;

    private sealed class PlainOps : IDevPagemapOps
    {
        public void PageFree(DevPagemap pgmap, ulong pfn) { }
        public VmFaultResult MigrateToRam(in VmFault vmf) => VmFaultResult.SigBus;
    }

    private sealed class BarExporter(PciFunction function) : IDevPagemapOps, IDevicePrivateP2pPages
    {
        public bool Allow { get; set; } = true;
        public ulong BarBase { get; } = 0x80_0000_0000;
        public DevPagemap? Pgmap { get; set; }
        public PciFunction? ExporterFunction => function;
        public void PageFree(DevPagemap pgmap, ulong pfn) { }
        public VmFaultResult MigrateToRam(in VmFault vmf) => VmFaultResult.SigBus;
        public bool AllowPeer(DevPagemap pgmap, PciFunction importer) => Allow;

        public Errno P2pPage(DevPagemap pgmap, ulong pfn, PciFunction importer, out ulong busAddress)
        {
            busAddress = BarBase + ((pfn - pgmap.FirstPfn) << Page.Shift);
            return Errno.Ok;
        }

        public bool ResolveBus(ulong busAddress, out ulong pfn)
        {
            pfn = Pgmap!.FirstPfn + ((busAddress - BarBase) >> Page.Shift);
            return busAddress >= BarBase && busAddress - BarBase < Pgmap.PageCount << Page.Shift;
        }
    }

    [Test]
    public void Map_AsksTheExporter_OnlyWhenItAllowsThePeerAndThePathSupportsP2p()
    {
        using var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
        var t = new PciTopology(machine);
        var sw = t.AddSwitch(t.AddRootPort(t.AddHostBridge(device: 0x1234), 1), 2);
        var gpu = t.AddEndpoint(sw.DownstreamPorts[0], Nvidia, 0x1db4);
        var nic = t.AddEndpoint(sw.DownstreamPorts[1], 0x15b3, 0x1017);
        var far = t.AddEndpoint(t.AddRootPort(t.AddHostBridge(PciTopology.VendorIntel, 0x4321), 1), 0x15b3, 0x1017);
        var exporter = new BarExporter(gpu);
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, 2UL << 20, exporter, exporter, out var pgmap), Is.EqualTo(Errno.Ok));
        exporter.Pgmap = pgmap;
        ulong pfn = pgmap!.FirstPfn + 3;

        Assert.That(DevicePrivateP2pDma.Map(pgmap, pfn, nic, out ulong bus), Is.EqualTo(Errno.Ok));
        Assert.That(bus, Is.EqualTo(exporter.BarBase + 3 * Page.Size));
        Assert.That(exporter.ResolveBus(bus, out ulong back) && back == pfn, Is.True);

        Assert.That(DevicePrivateP2pDma.Map(pgmap, pfn, far, out _), Is.EqualTo(Errno.EOPNOTSUPP), "NOT_SUPPORTED path");
        exporter.Allow = false;
        Assert.That(DevicePrivateP2pDma.Map(pgmap, pfn, nic, out _), Is.EqualTo(Errno.EPERM), "the exporter refuses");
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, 2UL << 20, new object(), new PlainOps(), out var plain), Is.EqualTo(Errno.Ok));
        Assert.That(DevicePrivateP2pDma.Map(plain!, plain!.FirstPfn, nic, out _), Is.EqualTo(Errno.EOPNOTSUPP), "no exporter hook");
        Assert.That(pgmap.Remove(), Is.EqualTo(Errno.Ok));
        Assert.That(plain.Remove(), Is.EqualTo(Errno.Ok));
        machine.CheckInvariants();
    }

    [Test]
    public void SetPageDirty_MarksTheHeadPage_AndIgnoresTheZeroPage()
    {
        using var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
        var process = machine.CreateProcess("app");
        ulong buf = process.Mmap(2 * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        process.Store(buf, 1UL);
        Assert.That(process.Load<ulong>(buf + Page.Size), Is.Zero); // the zero page, read-only
        ulong pfn = process.Mm.EntryAt(buf).Pfn;
        ulong zero = process.Mm.EntryAt(buf + Page.Size).Pfn;
        machine.SetPageDirty(pfn);
        machine.SetPageDirty(zero);
        Assert.That(machine.IsPageDirty(pfn), Is.True);
        Assert.That(machine.IsPageDirty(zero), Is.False);
        process.Exit();
        machine.CheckInvariants();
    }
}
