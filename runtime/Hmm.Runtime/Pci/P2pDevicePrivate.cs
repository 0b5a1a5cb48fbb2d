using Hmm.Runtime.DeviceMemory;

namespace Hmm.Runtime.Pci;

/// <summary>
/// The exporter's policy for peer access to its device-private memory (the 2019 RFC's
/// <c>hmm_devmem_ops.p2p_map</c> decision, kernel-hmm.md G.2): implemented by a driver's
/// <see cref="IDevPagemapOps"/> object when it lets other devices reach its memory directly.
/// </summary>
public interface IDevicePrivatePeerPolicy
{
    /// <summary>Whether <paramref name="importer"/> may reach pages of <paramref name="pgmap"/> peer-to-peer.</summary>
    bool AllowPeer(DevPagemap pgmap, PciFunction importer);
}

/// <summary>
/// Peer-to-peer to HMM device memory inside an ordinary process VMA. Mainline HMM never
/// p2p-maps another device's private pages: hmm_range_fault migrates them back to RAM. Devices
/// that can reach each other's memory instead share the exporter's <c>pgmap->owner</c> as
/// <c>dev_private_owner</c>, so the pages are reported rather than migrated (kernel-hmm.md G.1,
/// last paragraph — what multi-GPU SVM builds on); the RFC adds the exporter's say and falls back
/// to migration when it refuses (G.2). This is that decision in one place.
/// </summary>
public static class P2pDevicePrivate
{
    /// <summary>
    /// The <c>dev_private_owner</c> an importing device passes to hmm_range_fault to reach
    /// <paramref name="exporterMemory"/> in place: the exporter's owner when it is private memory,
    /// the exporter allows <paramref name="importer"/> (<see cref="IDevicePrivatePeerPolicy"/>) and
    /// the PCI path supports p2p (<see cref="P2pDma.Distance"/> ≥ 0). Null otherwise: the importer
    /// keeps its own owner and the pages migrate to system memory when it faults them.
    /// </summary>
    public static object? PeerOwner(DevPagemap exporterMemory, PciFunction exporter, PciFunction importer)
    {
        if (exporterMemory.Kind != DevicePageKind.Private || exporterMemory.Owner == null) return null;
        if (exporterMemory.Ops is not IDevicePrivatePeerPolicy policy || !policy.AllowPeer(exporterMemory, importer)) return null;
        return P2pDma.Distance(exporter, importer, out _) >= 0 ? exporterMemory.Owner : null;
    }
}
