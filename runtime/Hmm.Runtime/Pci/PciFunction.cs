namespace Hmm.Runtime.Pci;

/// <summary>
/// Simulates <c>struct pci_dev</c>: one function in the PCI tree — a host-bridge function, a
/// root port, a switch port or an endpoint — with its ids, its upstream link
/// (<c>pci_upstream_bridge</c>), its ACS capability and control bits, its BARs and, once it
/// provides p2p memory, its <c>pci_p2pdma</c> state (<see cref="P2p"/>).
/// </summary>
public sealed class PciFunction
{
    private readonly PciBar?[] _bars = new PciBar?[6];
    private AcsControl _acsControl;
    private P2pProvider? _p2p;

    internal PciFunction(PciTopology topology, PciHostBridge host, PciNodeKind kind, int bus, int devfn, ushort vendor, ushort device, PciFunction? upstream, bool acsCapable)
    {
        Topology = topology;
        HostBridge = host;
        Kind = kind;
        Bus = bus;
        Devfn = devfn;
        VendorId = vendor;
        DeviceId = device;
        Upstream = upstream;
        AcsCapable = acsCapable;
    }

    /// <summary>The topology.</summary>
    public PciTopology Topology { get; }

    /// <summary>pci_find_host_bridge(dev->bus).</summary>
    public PciHostBridge HostBridge { get; }

    /// <summary>Port type.</summary>
    public PciNodeKind Kind { get; }

    /// <summary>pci_domain_nr.</summary>
    public int Domain => HostBridge.Domain;

    /// <summary>Number of the bus the function sits on.</summary>
    public int Bus { get; }

    /// <summary>PCI_DEVFN(slot, func).</summary>
    public int Devfn { get; }

    /// <summary>PCI_SLOT(devfn).</summary>
    public int Slot => Devfn >> 3;

    /// <summary>PCI_FUNC(devfn).</summary>
    public int FunctionNumber => Devfn & 7;

    /// <summary>Vendor id.</summary>
    public ushort VendorId { get; }

    /// <summary>Device id.</summary>
    public ushort DeviceId { get; }

    /// <summary>For a bridge/port: the number of the bus below it; −1 otherwise.</summary>
    public int SecondaryBus { get; internal set; } = -1;

    /// <summary>
    /// pci_upstream_bridge: the bridge above the function's bus, or null when the function sits
    /// on the root bus (root ports, host-bridge functions, integrated endpoints).
    /// </summary>
    public PciFunction? Upstream { get; }

    /// <summary>Whether the function is a bridge (has a secondary bus).</summary>
    public bool IsBridge => Kind is PciNodeKind.RootPort or PciNodeKind.SwitchUpstreamPort or PciNodeKind.SwitchDownstreamPort;

    /// <summary>pci_dev_id: bus &lt;&lt; 8 | devfn.</summary>
    public int DevId => (Bus << 8) | Devfn;

    /// <summary>map_types_idx: the key of the provider's map-type cache, (domain &lt;&lt; 16) | pci_dev_id.</summary>
    public ulong MapTypesIndex => ((ulong)(uint)Domain << 16) | (uint)DevId;

    /// <summary>Whether the function has an ACS capability (<c>pdev->acs_cap</c> != 0).</summary>
    public bool AcsCapable { get; }

    /// <summary>The ACS control bits a test or driver set explicitly (before IOMMU and disable_acs_redir).</summary>
    public AcsControl AcsControlRequested => _acsControl;

    /// <summary>
    /// <c>pci=disable_acs_redir=</c> names this function: RR, CR and EC are cleared whatever else
    /// enables them (pci_disable_acs_redir).
    /// </summary>
    public bool DisableAcsRedir { get; set; }

    /// <summary>
    /// The ACS control register as the hardware has it: the requested bits, plus SV|RR|CR|UF when
    /// the IOMMU is on (pci_std_enable_acs, done for every ACS-capable function when an IOMMU
    /// driver requests isolation), minus RR|CR|EC for <see cref="DisableAcsRedir"/>.
    /// Zero without an ACS capability.
    /// </summary>
    public AcsControl AcsControlEffective
    {
        get
        {
            if (!AcsCapable) return AcsControl.None;
            var c = _acsControl;
            if (Topology.IommuEnabled)
                c |= AcsControl.SourceValidation | AcsControl.RequestRedirect | AcsControl.CompletionRedirect | AcsControl.UpstreamForwarding;
            if (DisableAcsRedir) c &= ~AcsControl.RedirectMask;
            return c;
        }
    }

    /// <summary>pci_bridge_has_acs_redir: ACS capability present and any of RR, CR, EC set.</summary>
    public bool HasAcsRedirect => (AcsControlEffective & AcsControl.RedirectMask) != 0;

    /// <summary>Writes the ACS control register. InvalidOperationException without an ACS capability.</summary>
    public void SetAcsControl(AcsControl control)
    {
        if (!AcsCapable) throw new InvalidOperationException($"{this} has no ACS capability");
        _acsControl = control;
    }

    /// <summary>BAR <paramref name="index"/>, or null when not implemented.</summary>
    public PciBar? Bar(int index) => (uint)index < 6 ? _bars[index] : throw new ArgumentOutOfRangeException(nameof(index));

    /// <summary>
    /// Implements BAR <paramref name="index"/> with <paramref name="length"/> bytes (a power of
    /// two, at least 4 KiB); the topology assigns its CPU physical window. <paramref name="busOffset"/>
    /// is the bus address minus the CPU address (0 on most x86 hosts).
    /// </summary>
    public PciBar AddBar(int index, ulong length, PciBarKind kind = PciBarKind.Memory, long busOffset = 0)
    {
        if ((uint)index >= 6) throw new ArgumentOutOfRangeException(nameof(index));
        if (_bars[index] != null) throw new InvalidOperationException($"{this} BAR{index} already exists");
        if (length < Memory.Page.Size || (length & (length - 1)) != 0) throw new ArgumentException("a BAR is a power of two of at least 4 KiB", nameof(length));
        var bar = new PciBar(this, index, kind, Topology.AssignMmio(length), length, busOffset);
        _bars[index] = bar;
        return bar;
    }

    /// <summary>pdev->p2pdma: the p2p provider state, null until <see cref="P2pMem.AddResource"/> first runs.</summary>
    public P2pProvider? P2p => Volatile.Read(ref _p2p);

    internal P2pProvider GetOrCreateP2p()
    {
        var p = Volatile.Read(ref _p2p);
        if (p != null) return p;
        Interlocked.CompareExchange(ref _p2p, new P2pProvider(this), null);
        return _p2p!;
    }

    /// <summary>pci_name: "dddd:bb:ss.f".</summary>
    public string Name => $"{Domain:x4}:{Bus:x2}:{Slot:x2}.{FunctionNumber:x}";

    /// <inheritdoc/>
    public override string ToString() => $"{Name} {Kind} [{VendorId:x4}:{DeviceId:x4}]";
}
