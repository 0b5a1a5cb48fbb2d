namespace Hmm.Runtime.Pci;

/// <summary>What a PCI function is in the tree (the kernel's <c>pci_pcie_type()</c> plus the host-bridge function).</summary>
public enum PciNodeKind
{
    /// <summary>The host bridge's own function on the root bus (class 0600, usually devfn 00.0); not a bridge in the tree.</summary>
    HostBridgeFunction,
    /// <summary>PCI_EXP_TYPE_ROOT_PORT: a root port on the root bus; its secondary bus holds one link.</summary>
    RootPort,
    /// <summary>PCI_EXP_TYPE_UPSTREAM: a switch's upstream port.</summary>
    SwitchUpstreamPort,
    /// <summary>PCI_EXP_TYPE_DOWNSTREAM: a switch's downstream port.</summary>
    SwitchDownstreamPort,
    /// <summary>PCI_EXP_TYPE_ENDPOINT: an endpoint function (a device may have up to eight).</summary>
    Endpoint,
    /// <summary>PCI_EXP_TYPE_RC_END: a root-complex integrated endpoint (on the root bus, no upstream bridge).</summary>
    RootComplexEndpoint,
}

/// <summary>
/// The ACS control register bits (<c>PCI_ACS_*</c>, kernel values). A node "redirects" for
/// p2pdma when any of <see cref="RequestRedirect"/>, <see cref="CompletionRedirect"/> or
/// <see cref="EgressControl"/> is set (<c>pci_bridge_has_acs_redir</c>, reference/kernel-hmm.md G.1).
/// </summary>
[Flags]
public enum AcsControl : ushort
{
    /// <summary>No control bit set.</summary>
    None = 0,
    /// <summary>PCI_ACS_SV: source validation.</summary>
    SourceValidation = 0x01,
    /// <summary>PCI_ACS_TB: translation blocking.</summary>
    TranslationBlocking = 0x02,
    /// <summary>PCI_ACS_RR: P2P request redirect (peer requests go up to the root complex).</summary>
    RequestRedirect = 0x04,
    /// <summary>PCI_ACS_CR: P2P completion redirect.</summary>
    CompletionRedirect = 0x08,
    /// <summary>PCI_ACS_UF: upstream forwarding.</summary>
    UpstreamForwarding = 0x10,
    /// <summary>PCI_ACS_EC: P2P egress control.</summary>
    EgressControl = 0x20,
    /// <summary>PCI_ACS_DT: direct translated P2P.</summary>
    DirectTranslated = 0x40,
    /// <summary>The bits <c>pci_bridge_has_acs_redir</c> tests: RR | CR | EC.</summary>
    RedirectMask = RequestRedirect | CompletionRedirect | EgressControl,
}

/// <summary>
/// Simulates <c>enum pci_p2pdma_map_type</c> with the kernel's values (reference/kernel-hmm.md G.1):
/// how a client reaches a provider's p2p memory.
/// </summary>
public enum P2pMapType
{
    /// <summary>PCI_P2PDMA_MAP_UNKNOWN (0): internal — not computed yet (an empty cache slot).</summary>
    Unknown = 0,
    /// <summary>PCI_P2PDMA_MAP_NONE (1): not a P2P page.</summary>
    None = 1,
    /// <summary>PCI_P2PDMA_MAP_NOT_SUPPORTED (2): the client cannot reach the provider; mapping fails.</summary>
    NotSupported = 2,
    /// <summary>PCI_P2PDMA_MAP_BUS_ADDR (3): routed by a common switch; PCI bus address = CPU phys + bus_offset, bypasses the IOMMU.</summary>
    BusAddr = 3,
    /// <summary>PCI_P2PDMA_MAP_THRU_HOST_BRIDGE (4): through the root complex; a normal DMA mapping (IOVA if an IOMMU is on).</summary>
    ThruHostBridge = 4,
}

/// <summary>The CPU vendor, for <c>cpu_supports_p2pdma()</c>.</summary>
public enum CpuVendor
{
    /// <summary>GenuineIntel.</summary>
    Intel,
    /// <summary>AuthenticAMD.</summary>
    Amd,
    /// <summary>Anything else (Arm, …): p2pdma through the host bridge relies on the whitelist.</summary>
    Other,
}

/// <summary>Type of a BAR (<c>IORESOURCE_MEM</c> / <c>IORESOURCE_IO</c>).</summary>
public enum PciBarKind
{
    /// <summary>IORESOURCE_MEM: memory space (may be used for p2pdma).</summary>
    Memory,
    /// <summary>IORESOURCE_IO: I/O port space (never p2pdma).</summary>
    Io,
}
