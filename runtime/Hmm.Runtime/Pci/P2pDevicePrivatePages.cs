using Hmm.Runtime.DeviceMemory;

namespace Hmm.Runtime.Pci;

/// <summary>
/// The proposed pagemap callback of the HMM p2p series (drivers.md B.13: <c>get_dma_pfn_for_device</c>,
/// earlier <c>p2p_page</c>): an exporter whose device-private pages are reachable through one of its
/// BARs hands an importing device the bus address of the BAR page backing a private page, so the
/// importer DMAs straight into device memory instead of having the page migrated back to RAM.
/// Implemented by a driver's <see cref="IDevPagemapOps"/> object, next to its
/// <see cref="IDevicePrivatePeerPolicy"/>.
/// </summary>
public interface IDevicePrivateP2pPages : IDevicePrivatePeerPolicy
{
    /// <summary>The PCI function whose BAR exposes the memory (null: not exported).</summary>
    PciFunction? ExporterFunction { get; }

    /// <summary>
    /// The bus address through which <paramref name="importer"/> reaches private page
    /// <paramref name="pfn"/> of <paramref name="pgmap"/> (the BAR page backing it, mapped into the BAR
    /// on demand). <see cref="Errno.Ok"/>, or an errno when this page cannot be exported (not in
    /// the BAR window, refused): the importer then falls back to migrate-to-RAM for that page only.
    /// Called with the importer's update lock held: must not sleep on the mm.
    /// </summary>
    Errno P2pPage(DevPagemap pgmap, ulong pfn, PciFunction importer, out ulong busAddress);

    /// <summary>
    /// The BAR decode: the private page a bus address handed out by <see cref="P2pPage"/> reaches, or
    /// false when the address is not (or no longer) backed. What a peer's DMA through the BAR lands on.
    /// </summary>
    bool ResolveBus(ulong busAddress, out ulong pfn);
}

/// <summary>
/// The importer side of <see cref="IDevicePrivateP2pPages"/>: hmm_range_fault reported a peer's
/// private page (the importer passed the exporter's owner, <see cref="P2pDevicePrivate.PeerOwner"/>),
/// and the importer now needs a DMA address for it — the RFC's per-page DMA map of a P2P page, whose
/// failure makes the caller retry that page without p2p (migrate-to-RAM).
/// </summary>
public static class DevicePrivateP2pDma
{
    /// <summary>
    /// The bus address <paramref name="importer"/> uses for private page <paramref name="pfn"/> of
    /// <paramref name="pgmap"/>: EOPNOTSUPP when the page is not private or its driver exports nothing,
    /// EPERM when the exporter refuses the peer, EOPNOTSUPP as well when the PCI path cannot carry p2p
    /// (<see cref="P2pDma.Distance"/> &lt; 0), else whatever <see cref="IDevicePrivateP2pPages.P2pPage"/> says.
    /// </summary>
    public static Errno Map(DevPagemap pgmap, ulong pfn, PciFunction importer, out ulong busAddress)
    {
        ArgumentNullException.ThrowIfNull(pgmap);
        ArgumentNullException.ThrowIfNull(importer);
        busAddress = 0;
        if (pgmap.Kind != DevicePageKind.Private || pgmap.Ops is not IDevicePrivateP2pPages exporter || exporter.ExporterFunction is not { } function)
            return Errno.EOPNOTSUPP;
        if (!exporter.AllowPeer(pgmap, importer)) return Errno.EPERM;
        if (P2pDma.Distance(function, importer, out _) < 0) return Errno.EOPNOTSUPP;
        return exporter.P2pPage(pgmap, pfn, importer, out busAddress);
    }
}
