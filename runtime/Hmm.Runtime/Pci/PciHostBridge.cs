namespace Hmm.Runtime.Pci;

/// <summary>
/// Simulates <c>struct pci_host_bridge</c> (a root complex): a PCI domain's root bus and the
/// functions on it. Which device identifies it for the p2pdma whitelist is
/// <see cref="IdentifyingFunction"/> (<c>pci_host_bridge_dev</c>, reference/kernel-hmm.md G.1).
/// </summary>
public sealed class PciHostBridge
{
    internal readonly List<PciFunction> RootBusFunctions = new();

    internal PciHostBridge(PciTopology topology, int index, int domain, int rootBus)
    {
        Topology = topology;
        Index = index;
        Domain = domain;
        RootBus = rootBus;
    }

    /// <summary>The topology.</summary>
    public PciTopology Topology { get; }

    /// <summary>Order of creation (for messages).</summary>
    public int Index { get; }

    /// <summary>pci_domain_nr of the root bus.</summary>
    public int Domain { get; }

    /// <summary>Number of the root bus.</summary>
    public int RootBus { get; }

    /// <summary>The functions on the root bus, in devfn order (the kernel's <c>bus->devices</c> list after scanning).</summary>
    public IReadOnlyList<PciFunction> Functions => RootBusFunctions;

    /// <summary>
    /// pci_host_bridge_dev: the first function on the root bus, if it is devfn 00.0 or a PCIe
    /// Root Port; otherwise null (and the bridge is then never whitelisted).
    /// </summary>
    public PciFunction? IdentifyingFunction
    {
        get
        {
            if (RootBusFunctions.Count == 0) return null;
            var root = RootBusFunctions[0];
            return root.Devfn == 0 || root.Kind == PciNodeKind.RootPort ? root : null;
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"pci{Domain:x4}:{RootBus:x2}";
}
