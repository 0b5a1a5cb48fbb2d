using Hmm.Generators.Behaviour.Tests.Drivers;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Pci;
using NUnit.Framework;

namespace Hmm.Generators.Behaviour.Tests;

/// <summary>Generated p2p wiring: an exporting driver's policy decides a generated importer's requests.</summary>
public sealed class P2pBehaviourTests
{
    private const ulong Len = 16 * 4096;

    [Test]
    public void Importer_MapsThePeersMemory_AsTheExportersPolicyAllows()
    {
        using var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
        var topology = new PciTopology(machine);
        var sw = topology.AddSwitch(topology.AddRootPort(topology.AddHostBridge(PciTopology.VendorIntel, 0x1234), 1), 2);
        var gpu = topology.AddEndpoint(sw.DownstreamPorts[0], 0x10de, 0x1db4);
        var nic = topology.AddEndpoint(sw.DownstreamPorts[1], 0x15b3, 0x1017);
        gpu.AddBar(1, 4UL << 20, busOffset: 0x2000_0000);
        Assert.That(P2pMem.AddResource(gpu, 1, 0, 0), Is.EqualTo(Errno.Ok));
        var process = machine.CreateProcess("app");
        var exporter = new ExportingDriver();
        var importer = new ImportingDriver();
        Assert.That(exporter.Attach(new SimDevice(machine, "gpu", pci: gpu), process), Is.EqualTo(Errno.Ok));
        Assert.That(importer.Attach(new SimDevice(machine, "nic", pci: nic), process), Is.EqualTo(Errno.Ok));
        ulong addr = process.MmapDevice(Len, Prot.Read | Prot.Write, exporter.P2pExporter);

        Assert.That(importer.ImportPeer(addr, addr + Len, write: false, out var import), Is.EqualTo(Errno.Ok));
        Assert.That(import!.IsMapped, Is.True);
        Assert.That(importer.Programmed, Is.EqualTo(1));
        Assert.That(exporter.P2pExporter.Maps, Is.EqualTo(1));

        Assert.That(importer.ImportPeer(addr, addr + Len, write: true, out var refused), Is.EqualTo(Errno.EACCES));
        Assert.That(refused, Is.Null);
        Assert.That(exporter.Refused, Is.EqualTo(1));
        Assert.That(importer.Programmed, Is.EqualTo(1), "a refused import is not programmed");

        import.Dispose();
        Assert.That(new ImportingDriver().Attach(new SimDevice(machine, "nopci"), process), Is.EqualTo(Errno.EINVAL), "p2p needs a PCI function");
        importer.Detach();
        exporter.Detach();
        process.Exit();
        machine.CheckInvariants();
    }
}
