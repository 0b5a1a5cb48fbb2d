using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Pci;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Pci;

/// <summary>
/// Peer-to-peer to HMM device memory in a regular VMA (issue 4; kernel-hmm.md G.1 last paragraph
/// and G.2): an importing device reaches an exporter's device-private pages in place when the
/// exporter allows it and the PCI path supports p2p; otherwise they migrate back to RAM.
/// </summary>
public class P2pDevicePrivateTests
{
    private const ushort Nvidia = 0x10de;
    private Machine _machine = null!;
    private Process _process = null!;
    private PciFunction _exporterPci = null!, _importerPci = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
        _process = _machine.CreateProcess("app");
        var t = new PciTopology(_machine);
        var sw = t.AddSwitch(t.AddRootPort(t.AddHostBridge(device: 0x1234), 1), 2);
        _exporterPci = t.AddEndpoint(sw.DownstreamPorts[0], Nvidia, 0x1db4);
        _importerPci = t.AddEndpoint(sw.DownstreamPorts[1], Nvidia, 0x1db4);
    }

    [TearDown]
    public void TearDown()
    {
        if (!_process.HasExited) _process.Exit();
        _machine.CheckInvariants();
        _machine.Dispose();
    }

    private (TestDevice Exporter, ulong Buf) MigratedBuffer()
    {
        var exporter = new TestDevice(_machine, DevicePageKind.Private, 8UL << 20, "gpu0");
        ulong buf = _process.Mmap(4 * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        for (int i = 0; i < 4; i++) _process.Store(buf + ((ulong)i * Page.Size), 0xA0UL + (ulong)i);
        Assert.That(exporter.MigrateToDevice(_process, buf, 4), Is.EqualTo(4));
        return (exporter, buf);
    }

    private static void ReadAll(SimDevice importer, MirrorDriver driver, ulong buf)
    {
        var ops = new DeviceOp[4];
        for (int i = 0; i < 4; i++) ops[i] = new DeviceOp(buf + ((ulong)i * Page.Size), DeviceAccess.Read);
        importer.Executor.LaunchOnePerThread(driver.Instance, 1, ops);
        driver.RunToCompletion();
    }

    // G.1: a shared dev_private_owner makes hmm_range_fault report the exporter's pages; the peer
    // reads them in device memory and nothing migrates.
    [Test]
    public void AnAllowedPeerReadsDevicePrivatePagesInPlace()
    {
        var (exporter, buf) = MigratedBuffer();
        exporter.AllowPeers = true;
        var importer = new SimDevice(_machine, "gpu1", pci: _importerPci);
        using var driver = new MirrorDriver(importer, _process)
        {
            DevPrivateOwner = P2pDevicePrivate.PeerOwner(exporter.Pgmap, _exporterPci, _importerPci),
        };
        Assert.That(driver.DevPrivateOwner, Is.SameAs(exporter));

        ReadAll(importer, driver, buf);

        for (int t = 0; t < 4; t++) Assert.That(importer.Executor.ResultOf(t), Is.EqualTo(0xA0UL + (ulong)t));
        Assert.That(_process.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.DevicePrivate), "the pages stayed in the exporter's memory");
        Assert.That(exporter.MigrateToRamCalls, Is.Zero);
        Assert.That(_process.Load<ulong>(buf + Page.Size), Is.EqualTo(0xA1UL), "the CPU still migrates on touch");
    }

    // G.2: an exporter that refuses is obeyed — the importer keeps its own owner and its faults
    // migrate the pages back to system memory (the RFC's fallback).
    [Test]
    public void ARefusingExporterIsObeyedAndThePagesMigrateBack()
    {
        var (exporter, buf) = MigratedBuffer();
        exporter.AllowPeers = false;
        var importer = new SimDevice(_machine, "gpu1", pci: _importerPci);
        Assert.That(P2pDevicePrivate.PeerOwner(exporter.Pgmap, _exporterPci, _importerPci), Is.Null);
        using var driver = new MirrorDriver(importer, _process) { DevPrivateOwner = new object() };

        ReadAll(importer, driver, buf);

        for (int t = 0; t < 4; t++) Assert.That(importer.Executor.ResultOf(t), Is.EqualTo(0xA0UL + (ulong)t));
        Assert.That(_process.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.Present), "the fault migrated the pages to RAM");
        Assert.That(exporter.MigrateToRamCalls, Is.GreaterThan(0));
        Assert.That(exporter.PageFrees, Is.EqualTo(exporter.Allocations));
    }

    // G.1: even with the exporter's consent, a path the PCI rules do not support gets no peer owner.
    [Test]
    public void AnUnsupportedPathGetsNoPeerOwner()
    {
        var t = new PciTopology(_machine);
        var a = t.AddEndpoint(t.AddRootPort(t.AddHostBridge(PciTopology.VendorIntel, 0x1111), 1), Nvidia, 0x1db4);
        var b = t.AddEndpoint(t.AddRootPort(t.AddHostBridge(PciTopology.VendorIntel, 0x2222), 1), Nvidia, 0x1db4);
        var exporter = new TestDevice(_machine, DevicePageKind.Private, 8UL << 20) { AllowPeers = true };
        Assert.That(P2pDma.Distance(a, b, out var type), Is.EqualTo(-1));
        Assert.That(type, Is.EqualTo(P2pMapType.NotSupported));
        Assert.That(P2pDevicePrivate.PeerOwner(exporter.Pgmap, a, b), Is.Null);
        Assert.That(P2pDevicePrivate.PeerOwner(exporter.Pgmap, _exporterPci, _importerPci), Is.SameAs(exporter));
    }
}
