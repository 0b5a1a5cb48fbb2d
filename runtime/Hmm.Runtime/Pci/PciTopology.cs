using Hmm.Runtime.Locking;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Pci;

/// <summary>
/// A machine's PCI hierarchy: host bridges (root complexes) with their root buses, root ports,
/// switches and endpoint functions, plus the platform facts p2pdma depends on — whether an
/// IOMMU isolates devices and whether the CPU "supports p2pdma" (reference/kernel-hmm.md G.1).
/// Build it single-threaded before devices start; lookups are then safe from any thread.
/// </summary>
public sealed class PciTopology
{
    /// <summary>PCI_VENDOR_ID_INTEL.</summary>
    public const ushort VendorIntel = 0x8086;
    /// <summary>PCI_VENDOR_ID_AMD.</summary>
    public const ushort VendorAmd = 0x1022;
    /// <summary>PCI_VENDOR_ID_GOOGLE.</summary>
    public const ushort VendorGoogle = 0x1ae0;
    /// <summary>PCI_ANY_ID in a whitelist entry.</summary>
    public const int AnyId = -1;

    private readonly List<PciHostBridge> _hostBridges = new();
    private readonly List<PciFunction> _functions = new();
    private readonly Dictionary<int, int> _nextBus = new();
    private readonly List<string> _warnings = new();
    private readonly SpinLock _warningsLock = new("pci.warnings");
    private ulong _nextMmio = 0x40_0000_0000;   // 256 GiB: above RAM, like a 64-bit MMIO window
    private bool _iommu;

    /// <summary>Creates an empty topology for <paramref name="machine"/> (whose RAM backs p2p memory pages).</summary>
    public PciTopology(Machine machine)
    {
        ArgumentNullException.ThrowIfNull(machine);
        Machine = machine;
    }

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>Host bridges in creation order.</summary>
    public IReadOnlyList<PciHostBridge> HostBridges => _hostBridges;

    /// <summary>Every function, in scan order (what <c>pci_get_device(PCI_ANY_ID, PCI_ANY_ID, …)</c> iterates).</summary>
    public IReadOnlyList<PciFunction> Functions => _functions;

    /// <summary>CPU vendor (default Intel).</summary>
    public CpuVendor CpuVendor { get; set; } = CpuVendor.Intel;

    /// <summary>x86 CPU family (boot_cpu_data.x86; default 6, an Intel Core).</summary>
    public int CpuFamily { get; set; } = 6;

    /// <summary>
    /// cpu_supports_p2pdma(): AMD family ≥ 0x17 (Zen and later) routes p2p through the host
    /// bridge whatever the whitelist says.
    /// </summary>
    public bool CpuSupportsP2pDma => CpuVendor == CpuVendor.Amd && CpuFamily >= 0x17;

    /// <summary>
    /// Whether an IOMMU isolates devices. Turning it on enables ACS source validation, request
    /// and completion redirect and upstream forwarding on every ACS-capable function (root and
    /// switch downstream ports), which turns BUS_ADDR paths through a switch into
    /// THRU_HOST_BRIDGE paths (G.1, IOMMU interplay). Cached map types are not recomputed,
    /// as in the kernel, where ACS is set up at enumeration time.
    /// </summary>
    public bool IommuEnabled
    {
        get => Volatile.Read(ref _iommu);
        set => Volatile.Write(ref _iommu, value);
    }

    /// <summary>The pci_warn messages p2pdma printed (ACS redirect on the path, no whitelisted host bridge…).</summary>
    public IReadOnlyList<string> Warnings
    {
        get
        {
            _warningsLock.Lock();
            try { return _warnings.ToArray(); }
            finally { _warningsLock.Unlock(); }
        }
    }

    internal void Warn(PciFunction dev, string message)
    {
        _warningsLock.Lock();
        try { _warnings.Add($"pci {dev.Name}: {message}"); }
        finally { _warningsLock.Unlock(); }
    }

    /// <summary>
    /// Adds a host bridge with a new root bus. With <paramref name="hostBridgeFunction"/> its own
    /// function (vendor/device as given) sits at devfn 00.0 of the root bus and identifies it for
    /// the whitelist; without it, the first root port added identifies it
    /// (<c>pci_host_bridge_dev</c>). <paramref name="domain"/> defaults to a new PCI domain.
    /// </summary>
    public PciHostBridge AddHostBridge(ushort vendor = VendorIntel, ushort device = 0x0000, bool hostBridgeFunction = true, int? domain = null)
    {
        int dom = domain ?? (_hostBridges.Count == 0 ? 0 : _hostBridges.Max(h => h.Domain) + 1);
        int rootBus = AllocateBus(dom);
        var hb = new PciHostBridge(this, _hostBridges.Count, dom, rootBus);
        _hostBridges.Add(hb);
        if (hostBridgeFunction) AddOnRootBus(hb, PciNodeKind.HostBridgeFunction, 0, 0, vendor, device, acsCapable: false);
        return hb;
    }

    /// <summary>Adds a PCIe root port at <paramref name="slot"/>.<paramref name="function"/> of the root bus (ACS-capable by default).</summary>
    public PciFunction AddRootPort(PciHostBridge host, int slot, int function = 0, ushort vendor = VendorIntel, ushort device = 0x2030, bool acsCapable = true)
    {
        var rp = AddOnRootBus(host, PciNodeKind.RootPort, slot, function, vendor, device, acsCapable);
        rp.SecondaryBus = AllocateBus(host.Domain);
        return rp;
    }

    /// <summary>Adds a root-complex integrated endpoint on the root bus (no upstream bridge).</summary>
    public PciFunction AddIntegratedEndpoint(PciHostBridge host, int slot, int function = 0, ushort vendor = VendorIntel, ushort device = 0x1234, bool acsCapable = false)
        => AddOnRootBus(host, PciNodeKind.RootComplexEndpoint, slot, function, vendor, device, acsCapable);

    /// <summary>
    /// Adds a switch below <paramref name="port"/> (a root port or a downstream port): an upstream
    /// port at 00.0 of the port's secondary bus and <paramref name="downstreamPorts"/> downstream
    /// ports at slots 0.. of the upstream port's secondary bus (ACS-capable by default).
    /// </summary>
    public PciSwitch AddSwitch(PciFunction port, int downstreamPorts, ushort vendor = 0x10b5, ushort device = 0x8747, bool downstreamAcsCapable = true)
    {
        CheckDownstream(port);
        if (downstreamPorts < 1 || downstreamPorts > 32) throw new ArgumentOutOfRangeException(nameof(downstreamPorts));
        var up = Add(port.HostBridge, PciNodeKind.SwitchUpstreamPort, port.SecondaryBus, 0, vendor, device, port, acsCapable: false);
        up.SecondaryBus = AllocateBus(port.Domain);
        var downs = new PciFunction[downstreamPorts];
        for (int i = 0; i < downstreamPorts; i++)
        {
            downs[i] = Add(port.HostBridge, PciNodeKind.SwitchDownstreamPort, up.SecondaryBus, i << 3, vendor, device, up, downstreamAcsCapable);
            downs[i].SecondaryBus = AllocateBus(port.Domain);
        }
        return new PciSwitch(up, downs);
    }

    /// <summary>
    /// Adds endpoint function <paramref name="function"/> of the device in <paramref name="slot"/>
    /// on <paramref name="port"/>'s secondary bus. Call again with another function number (same
    /// slot) for a multi-function device.
    /// </summary>
    public PciFunction AddEndpoint(PciFunction port, ushort vendor, ushort device, int function = 0, int slot = 0, bool acsCapable = false)
    {
        CheckDownstream(port);
        return Add(port.HostBridge, PciNodeKind.Endpoint, port.SecondaryBus, Devfn(slot, function), vendor, device, port, acsCapable);
    }

    /// <summary>pci_get_domain_bus_and_slot.</summary>
    public PciFunction? Find(int domain, int bus, int devfn)
    {
        foreach (var f in _functions) if (f.Domain == domain && f.Bus == bus && f.Devfn == devfn) return f;
        return null;
    }

    internal ulong AssignMmio(ulong length)
    {
        ulong start = (_nextMmio + length - 1) & ~(length - 1);
        _nextMmio = start + length;
        return start;
    }

    private PciFunction AddOnRootBus(PciHostBridge host, PciNodeKind kind, int slot, int function, ushort vendor, ushort device, bool acsCapable)
    {
        if (host.Topology != this) throw new ArgumentException("host bridge of another topology", nameof(host));
        var f = Add(host, kind, host.RootBus, Devfn(slot, function), vendor, device, upstream: null, acsCapable);
        int i = 0;
        while (i < host.RootBusFunctions.Count && host.RootBusFunctions[i].Devfn < f.Devfn) i++;
        host.RootBusFunctions.Insert(i, f);
        return f;
    }

    private PciFunction Add(PciHostBridge host, PciNodeKind kind, int bus, int devfn, ushort vendor, ushort device, PciFunction? upstream, bool acsCapable)
    {
        if (Find(host.Domain, bus, devfn) is { } clash) throw new InvalidOperationException($"devfn {devfn >> 3:x2}.{devfn & 7} on bus {bus:x2} is taken by {clash}");
        var f = new PciFunction(this, host, kind, bus, devfn, vendor, device, upstream, acsCapable);
        _functions.Add(f);
        return f;
    }

    private void CheckDownstream(PciFunction port)
    {
        ArgumentNullException.ThrowIfNull(port);
        if (port.Topology != this) throw new ArgumentException("function of another topology", nameof(port));
        if (port.Kind is not (PciNodeKind.RootPort or PciNodeKind.SwitchDownstreamPort))
            throw new ArgumentException($"{port} is not a root or switch downstream port", nameof(port));
    }

    private int AllocateBus(int domain)
    {
        _nextBus.TryGetValue(domain, out int bus);
        if (bus > 255) throw new InvalidOperationException($"domain {domain} has no free bus number");
        _nextBus[domain] = bus + 1;
        return bus;
    }

    private static int Devfn(int slot, int function)
    {
        if ((uint)slot > 31) throw new ArgumentOutOfRangeException(nameof(slot));
        if ((uint)function > 7) throw new ArgumentOutOfRangeException(nameof(function));
        return (slot << 3) | function;
    }
}
