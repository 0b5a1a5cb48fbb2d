namespace Hmm.Runtime.Pci;

/// <summary>A PCIe switch: one upstream port and its downstream ports (each a bridge with its own secondary bus).</summary>
public sealed class PciSwitch
{
    internal PciSwitch(PciFunction upstreamPort, IReadOnlyList<PciFunction> downstreamPorts)
    {
        UpstreamPort = upstreamPort;
        DownstreamPorts = downstreamPorts;
    }

    /// <summary>PCI_EXP_TYPE_UPSTREAM port.</summary>
    public PciFunction UpstreamPort { get; }

    /// <summary>PCI_EXP_TYPE_DOWNSTREAM ports, in devfn order.</summary>
    public IReadOnlyList<PciFunction> DownstreamPorts { get; }
}
