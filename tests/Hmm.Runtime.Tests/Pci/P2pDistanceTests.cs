using Hmm.Runtime.Mm;
using Hmm.Runtime.Pci;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Pci;

/// <summary>calc_map_type_and_dist and pci_p2pdma_distance: every topology case of reference/kernel-hmm.md G.1.</summary>
public class P2pDistanceTests
{
    private const ushort Nvidia = 0x10de, Mellanox = 0x15b3;
    private Machine _machine = null!;

    [SetUp] public void SetUp() => _machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
    [TearDown] public void TearDown() { _machine.CheckInvariants(); _machine.Dispose(); }

    private PciTopology Topo() => new(_machine);

    // G.1 "Worked distances": same function → 0, BUS_ADDR.
    [Test]
    public void SameFunctionIsDistanceZeroBusAddr()
    {
        var t = Topo();
        var rp = t.AddRootPort(t.AddHostBridge(device: 0x1234), 1);
        var gpu = t.AddEndpoint(rp, Nvidia, 0x1db4);
        Assert.That(P2pDma.Distance(gpu, gpu, out var type), Is.Zero);
        Assert.That(type, Is.EqualTo(P2pMapType.BusAddr));
    }

    // G.1 "Worked distances": two functions of one device → 2 (common upstream = their port), BUS_ADDR.
    [Test]
    public void TwoFunctionsOfOneDeviceAreDistanceTwo()
    {
        var t = Topo();
        var rp = t.AddRootPort(t.AddHostBridge(device: 0x1234), 1);
        var f0 = t.AddEndpoint(rp, Mellanox, 0x1017, function: 0);
        var f1 = t.AddEndpoint(rp, Mellanox, 0x1017, function: 1);
        Assert.That(P2pDma.Distance(f0, f1, out var type), Is.EqualTo(2));
        Assert.That(type, Is.EqualTo(P2pMapType.BusAddr));
    }

    // G.1 "Worked distances": device → downstream port → upstream port ← downstream port ← device = 4, BUS_ADDR
    // (even on a host bridge nobody whitelisted: the switch routes it).
    [Test]
    public void TwoDevicesBelowOneSwitchAreDistanceFour()
    {
        var (_, gpu, nic, _) = SwitchPair(hostDevice: 0x1234);
        Assert.That(P2pDma.Distance(gpu, nic, out var type), Is.EqualTo(4));
        Assert.That(type, Is.EqualTo(P2pMapType.BusAddr));
        Assert.That(P2pDma.Distance(nic, gpu, out _), Is.EqualTo(4), "symmetric");
    }

    // G.1 step 2 + 4: different root ports of one host bridge have no common upstream; dist = both full chains (2 + 2),
    // THRU_HOST_BRIDGE only when the host bridge is whitelisted.
    [TestCase((ushort)0x2030, P2pMapType.ThruHostBridge, 4, TestName = "DifferentRootPorts_SkylakeE_Whitelisted")]
    [TestCase((ushort)0x09a2, P2pMapType.ThruHostBridge, 4, TestName = "DifferentRootPorts_09a2_Whitelisted")]
    [TestCase((ushort)0x3c00, P2pMapType.ThruHostBridge, 4, TestName = "DifferentRootPorts_SameHostOnlyEntry_SameHost")]
    [TestCase((ushort)0x2f01, P2pMapType.ThruHostBridge, 4, TestName = "DifferentRootPorts_XeonE5v3_SameHost")]
    [TestCase((ushort)0x1234, P2pMapType.NotSupported, -1, TestName = "DifferentRootPorts_NotWhitelisted")]
    public void DifferentRootPortsSameHostBridge(ushort hostDevice, P2pMapType expected, int distance)
    {
        var t = Topo();
        var hb = t.AddHostBridge(PciTopology.VendorIntel, hostDevice);
        var a = t.AddEndpoint(t.AddRootPort(hb, 1), Nvidia, 0x1db4);
        var b = t.AddEndpoint(t.AddRootPort(hb, 2), Mellanox, 0x1017);
        Assert.That(P2pDma.Distance(a, b, out var type, verbose: true), Is.EqualTo(distance));
        Assert.That(type, Is.EqualTo(expected));
        if (expected == P2pMapType.NotSupported)
            Assert.That(t.Warnings, Has.Some.Contains("do not share an upstream bridge or whitelisted host bridge"));
    }

    // G.1 whitelist across host bridges: both listed and neither "same host bridge only".
    [TestCase((ushort)0x2030, (ushort)0x2031, P2pMapType.ThruHostBridge, TestName = "TwoHostBridges_BothAny")]
    [TestCase((ushort)0x3c00, (ushort)0x2030, P2pMapType.NotSupported, TestName = "TwoHostBridges_OneSameOnly")]
    [TestCase((ushort)0x2f00, (ushort)0x2f00, P2pMapType.NotSupported, TestName = "TwoHostBridges_BothSameOnly")]
    [TestCase((ushort)0x2030, (ushort)0x1234, P2pMapType.NotSupported, TestName = "TwoHostBridges_OneUnlisted")]
    [TestCase((ushort)0x1234, (ushort)0x5678, P2pMapType.NotSupported, TestName = "TwoHostBridges_NoneListed")]
    public void DifferentHostBridges(ushort deviceA, ushort deviceB, P2pMapType expected)
    {
        var t = Topo();
        var a = t.AddEndpoint(t.AddRootPort(t.AddHostBridge(PciTopology.VendorIntel, deviceA), 1), Nvidia, 0x1db4);
        var b = t.AddEndpoint(t.AddRootPort(t.AddHostBridge(PciTopology.VendorIntel, deviceB), 1), Nvidia, 0x1db4);
        int d = P2pDma.Distance(a, b, out var type);
        Assert.That(type, Is.EqualTo(expected));
        Assert.That(d, Is.EqualTo(expected == P2pMapType.NotSupported ? -1 : 4));
    }

    // G.1 whitelist: Google SoCs, vendor Google and any device id.
    [Test]
    public void GoogleHostBridgesAreWhitelistedForAnyDevice()
    {
        var t = Topo();
        var a = t.AddEndpoint(t.AddRootPort(t.AddHostBridge(PciTopology.VendorGoogle, 0x0042), 1), Nvidia, 1);
        var b = t.AddEndpoint(t.AddRootPort(t.AddHostBridge(PciTopology.VendorGoogle, 0x0077), 1), Nvidia, 1);
        Assert.That(P2pDma.Distance(a, b, out var type), Is.EqualTo(4));
        Assert.That(type, Is.EqualTo(P2pMapType.ThruHostBridge));
    }

    // G.1 "the host bridge device is the first device on the root bus if it is devfn 00.0 or a PCIe Root Port".
    [Test]
    public void HostBridgeIsIdentifiedByFirstRootBusDeviceOnlyIfDevfn0OrRootPort()
    {
        var t = Topo();
        // No host-bridge function: the first root port (01.0, id 0x2030) identifies the bridge.
        var hb = t.AddHostBridge(hostBridgeFunction: false);
        var a = t.AddEndpoint(t.AddRootPort(hb, 1, device: 0x2030), Nvidia, 1);
        var b = t.AddEndpoint(t.AddRootPort(hb, 2, device: 0x1111), Nvidia, 1);
        Assert.That(hb.IdentifyingFunction!.Kind, Is.EqualTo(PciNodeKind.RootPort));
        Assert.That(P2pDma.Distance(a, b, out var type), Is.EqualTo(4));
        Assert.That(type, Is.EqualTo(P2pMapType.ThruHostBridge));

        // First device is an integrated endpoint at 00.1: neither devfn 00.0 nor a root port → never whitelisted.
        var t2 = Topo();
        var hb2 = t2.AddHostBridge(hostBridgeFunction: false);
        t2.AddIntegratedEndpoint(hb2, 0, function: 1, device: 0x2030);
        var c = t2.AddEndpoint(t2.AddRootPort(hb2, 1, device: 0x2030), Nvidia, 1);
        var d = t2.AddEndpoint(t2.AddRootPort(hb2, 2, device: 0x2030), Nvidia, 1);
        Assert.That(hb2.IdentifyingFunction, Is.Null);
        Assert.That(P2pDma.Distance(c, d, out type), Is.EqualTo(-1));
        Assert.That(type, Is.EqualTo(P2pMapType.NotSupported));
    }

    // G.1 step 3: ACS redirect on a switch downstream port of the path → warn with the disable_acs_redir list and
    // fall to the host-bridge decision: THRU_HOST_BRIDGE if whitelisted, else NOT_SUPPORTED. Distance stays 4.
    [TestCase((ushort)0x2030, P2pMapType.ThruHostBridge, 4, TestName = "AcsRedirectOnSwitchPort_Whitelisted")]
    [TestCase((ushort)0x1234, P2pMapType.NotSupported, -1, TestName = "AcsRedirectOnSwitchPort_NotWhitelisted")]
    public void AcsRedirectOnSwitchPort(ushort hostDevice, P2pMapType expected, int distance)
    {
        var (t, gpu, nic, sw) = SwitchPair(hostDevice);
        sw.DownstreamPorts[1].SetAcsControl(AcsControl.RequestRedirect);
        Assert.That(P2pDma.Distance(gpu, nic, out var type, verbose: true), Is.EqualTo(distance));
        Assert.That(type, Is.EqualTo(expected));
        Assert.That(t.Warnings, Has.Some.Contains("ACS redirect is set between the client and provider"));
        Assert.That(t.Warnings, Has.Some.Contains($"pci=disable_acs_redir={sw.DownstreamPorts[1].Name}"));
    }

    // G.1: a node redirects if any of RR, CR, EC is set; other ACS bits do not count; the provider side counts too.
    [TestCase(AcsControl.CompletionRedirect, P2pMapType.NotSupported)]
    [TestCase(AcsControl.EgressControl, P2pMapType.NotSupported)]
    [TestCase(AcsControl.SourceValidation | AcsControl.UpstreamForwarding | AcsControl.TranslationBlocking, P2pMapType.BusAddr)]
    public void OnlyRrCrEcRedirect(AcsControl bits, P2pMapType expected)
    {
        var (_, gpu, nic, sw) = SwitchPair(hostDevice: 0x1234);
        sw.DownstreamPorts[0].SetAcsControl(bits);   // the provider's side
        P2pDma.Distance(gpu, nic, out var type);
        Assert.That(type, Is.EqualTo(expected));
    }

    // G.1 "IOMMU interplay": IOMMU isolation enables ACS redirect on switch ports → BUS_ADDR becomes THRU_HOST_BRIDGE
    // (whitelisted) or NOT_SUPPORTED; pci=disable_acs_redir on those ports restores BUS_ADDR.
    [Test]
    public void IommuTurnsBusAddrIntoThruHostBridge()
    {
        var (t, gpu, nic, sw) = SwitchPair(hostDevice: 0x2030);
        Assert.That(P2pDma.Distance(gpu, nic, out var type), Is.EqualTo(4));
        Assert.That(type, Is.EqualTo(P2pMapType.BusAddr));

        t.IommuEnabled = true;
        Assert.That(sw.DownstreamPorts[0].AcsControlEffective.HasFlag(AcsControl.RequestRedirect), Is.True);
        Assert.That(P2pDma.Distance(gpu, nic, out type), Is.EqualTo(4));
        Assert.That(type, Is.EqualTo(P2pMapType.ThruHostBridge));

        foreach (var p in sw.DownstreamPorts) p.DisableAcsRedir = true;
        P2pDma.Distance(gpu, nic, out type);
        Assert.That(type, Is.EqualTo(P2pMapType.BusAddr));
    }

    [Test]
    public void IommuWithoutWhitelistMakesSwitchPeersUnsupported()
    {
        var (t, gpu, nic, _) = SwitchPair(hostDevice: 0x1234);
        t.IommuEnabled = true;
        Assert.That(P2pDma.Distance(gpu, nic, out var type), Is.EqualTo(-1));
        Assert.That(type, Is.EqualTo(P2pMapType.NotSupported));
    }

    // G.1 step 4: cpu_supports_p2pdma() — AMD family ≥ 0x17 (Zen) passes without any whitelist; older AMD and Intel do not.
    [TestCase(CpuVendor.Amd, 0x17, P2pMapType.ThruHostBridge)]
    [TestCase(CpuVendor.Amd, 0x19, P2pMapType.ThruHostBridge)]
    [TestCase(CpuVendor.Amd, 0x16, P2pMapType.NotSupported)]
    [TestCase(CpuVendor.Intel, 0x17, P2pMapType.NotSupported)]
    public void AmdZenCpuSupportsP2pThroughHostBridge(CpuVendor vendor, int family, P2pMapType expected)
    {
        var t = Topo();
        t.CpuVendor = vendor;
        t.CpuFamily = family;
        var a = t.AddEndpoint(t.AddRootPort(t.AddHostBridge(PciTopology.VendorAmd, 0x1480), 1, vendor: PciTopology.VendorAmd, device: 0x1483), Nvidia, 1);
        var b = t.AddEndpoint(t.AddRootPort(t.AddHostBridge(PciTopology.VendorAmd, 0x1480), 1, vendor: PciTopology.VendorAmd, device: 0x1483), Nvidia, 1);
        P2pDma.Distance(a, b, out var type);
        Assert.That(type, Is.EqualTo(expected));
    }

    // G.1 step 5: the result is cached in the provider's map_types keyed (domain << 16 | bus/devfn);
    // pci_p2pdma_map_type answers from the cache (not recomputed after an ACS change), computes on a miss.
    [Test]
    public void MapTypeIsCachedPerProviderAndClient()
    {
        var (_, gpu, nic, sw) = SwitchPair(hostDevice: 0x1234);
        gpu.AddBar(0, 4UL << 20);
        Assert.That(P2pMem.AddResource(gpu, 0, 0, 0), Is.EqualTo(Errno.Ok));
        Assert.That(nic.MapTypesIndex, Is.EqualTo(((ulong)(uint)nic.Domain << 16) | (uint)((nic.Bus << 8) | nic.Devfn)));
        Assert.That(gpu.P2p!.CachedMapType(nic.MapTypesIndex), Is.EqualTo(P2pMapType.Unknown));

        Assert.That(P2pDma.MapType(gpu, nic), Is.EqualTo(P2pMapType.BusAddr), "miss: computed");
        Assert.That(gpu.P2p.CachedMapType(nic.MapTypesIndex), Is.EqualTo(P2pMapType.BusAddr));
        Assert.That(gpu.P2p.MapTypeCacheHits, Is.Zero);

        sw.DownstreamPorts[1].SetAcsControl(AcsControl.RequestRedirect);
        Assert.That(P2pDma.MapType(gpu, nic), Is.EqualTo(P2pMapType.BusAddr), "hit: the stale cached value");
        Assert.That(gpu.P2p.MapTypeCacheHits, Is.EqualTo(1));

        Assert.That(P2pDma.Distance(gpu, nic, out _), Is.EqualTo(-1), "distance recomputes and stores");
        Assert.That(P2pDma.MapType(gpu, nic), Is.EqualTo(P2pMapType.NotSupported));
        Assert.That(P2pDma.MapType(nic, gpu), Is.EqualTo(P2pMapType.NotSupported), "a client-only function has no p2pdma state");
    }

    // G.1 pci_p2pdma_distance: a client with no PCI ancestor → −1.
    [Test]
    public void NonPciClientIsNotSupported()
    {
        var (_, gpu, _, _) = SwitchPair(hostDevice: 0x2030);
        Assert.That(P2pDma.Distance(gpu, null, out var type), Is.EqualTo(-1));
        Assert.That(type, Is.EqualTo(P2pMapType.NotSupported));
    }

    // G.1 map-type enum values are the kernel's.
    [Test]
    public void MapTypeValuesAreTheKernels()
    {
        Assert.That((int)P2pMapType.Unknown, Is.EqualTo(0));
        Assert.That((int)P2pMapType.None, Is.EqualTo(1));
        Assert.That((int)P2pMapType.NotSupported, Is.EqualTo(2));
        Assert.That((int)P2pMapType.BusAddr, Is.EqualTo(3));
        Assert.That((int)P2pMapType.ThruHostBridge, Is.EqualTo(4));
    }

    /// <summary>Host bridge (00.0) → root port 01.0 → switch with two downstream ports → gpu, nic.</summary>
    internal (PciTopology, PciFunction Gpu, PciFunction Nic, PciSwitch) SwitchPair(ushort hostDevice)
    {
        var t = Topo();
        var rp = t.AddRootPort(t.AddHostBridge(PciTopology.VendorIntel, hostDevice), 1);
        var sw = t.AddSwitch(rp, 2);
        var gpu = t.AddEndpoint(sw.DownstreamPorts[0], Nvidia, 0x1db4);
        var nic = t.AddEndpoint(sw.DownstreamPorts[1], Mellanox, 0x1017);
        return (t, gpu, nic, sw);
    }
}
