using System.Text;

namespace Hmm.Runtime.Pci;

/// <summary>
/// Simulates drivers/pci/p2pdma.c's reachability rules: <c>calc_map_type_and_dist</c>,
/// <c>pci_p2pdma_distance(_many)</c>, <c>pci_p2pmem_find_many</c> and the map-type cache
/// consulted by <c>pci_p2pdma_map_type</c> (reference/kernel-hmm.md G.1).
/// </summary>
public static class P2pDma
{
    /// <summary>Per-host-bridge whitelist flag REQ_SAME_HOST_BRIDGE.</summary>
    [Flags]
    private enum WhitelistFlags { None = 0, ReqSameHostBridge = 1 }

    private static readonly (ushort Vendor, int Device, WhitelistFlags Flags)[] Whitelist =
    {
        // Intel Xeon E5/Core i7
        (PciTopology.VendorIntel, 0x3c00, WhitelistFlags.ReqSameHostBridge),
        (PciTopology.VendorIntel, 0x3c01, WhitelistFlags.ReqSameHostBridge),
        // Intel Xeon E7 v3/Xeon E5 v3/Core i7
        (PciTopology.VendorIntel, 0x2f00, WhitelistFlags.ReqSameHostBridge),
        (PciTopology.VendorIntel, 0x2f01, WhitelistFlags.ReqSameHostBridge),
        // Intel Skylake-E
        (PciTopology.VendorIntel, 0x2030, WhitelistFlags.None),
        (PciTopology.VendorIntel, 0x2031, WhitelistFlags.None),
        (PciTopology.VendorIntel, 0x2032, WhitelistFlags.None),
        (PciTopology.VendorIntel, 0x2033, WhitelistFlags.None),
        (PciTopology.VendorIntel, 0x2020, WhitelistFlags.None),
        (PciTopology.VendorIntel, 0x09a2, WhitelistFlags.None),
        // Google SoCs
        (PciTopology.VendorGoogle, PciTopology.AnyId, WhitelistFlags.None),
    };

    /// <summary>
    /// pci_p2pdma_distance: the distance from <paramref name="provider"/> to
    /// <paramref name="client"/> (number of links up to the common upstream device and down
    /// again), or −1 when the client cannot reach the provider (NOT_SUPPORTED) or is not a PCI
    /// device (null). <paramref name="type"/> is the map type computed (and cached).
    /// </summary>
    public static int Distance(PciFunction provider, PciFunction? client, out P2pMapType type, bool verbose = false)
    {
        ArgumentNullException.ThrowIfNull(provider);
        if (client == null) { type = P2pMapType.NotSupported; return -1; }
        type = CalcMapTypeAndDist(provider, client, out int dist, verbose);
        return type == P2pMapType.NotSupported ? -1 : dist;
    }

    /// <summary>
    /// pci_p2pdma_distance_many: −1 when there is no client, a client is not a PCI device
    /// (null: no PCI ancestor), or any client is NOT_SUPPORTED; else the sum of the distances
    /// (0 = the provider is the only client).
    /// </summary>
    public static int DistanceMany(PciFunction provider, ReadOnlySpan<PciFunction?> clients, bool verbose = false)
    {
        ArgumentNullException.ThrowIfNull(provider);
        if (clients.Length == 0) return -1;
        bool notSupported = false;
        int total = 0;
        foreach (var client in clients)
        {
            if (client == null)
            {
                if (verbose) provider.Topology.Warn(provider, "cannot be used for peer-to-peer DMA as the client is not a PCI device");
                return -1;
            }
            var map = CalcMapTypeAndDist(provider, client, out int dist, verbose);
            if (map == P2pMapType.NotSupported) notSupported = true;
            if (notSupported && !verbose) break;
            total += dist;
        }
        return notSupported ? -1 : total;
    }

    /// <summary>
    /// pci_p2pmem_find_many: among the functions of <paramref name="topology"/> that published p2p
    /// memory, the one with the smallest <see cref="DistanceMany"/> to all
    /// <paramref name="clients"/>; ties are broken uniformly at random with
    /// <paramref name="random"/> (get_random_u32_below). Null when none can serve them all.
    /// </summary>
    public static PciFunction? FindMany(PciTopology topology, ReadOnlySpan<PciFunction?> clients, Random? random = null)
    {
        ArgumentNullException.ThrowIfNull(topology);
        const int maxDevs = 4096 / 8;   // PAGE_SIZE / sizeof(*closest_pdevs)
        var closest = new List<PciFunction>();
        int closestDistance = int.MaxValue;
        foreach (var pdev in topology.Functions)
        {
            if (pdev.P2p is not { Published: true }) continue;   // pci_has_p2pmem
            int distance = DistanceMany(pdev, clients);
            if (distance < 0 || distance > closestDistance) continue;
            if (distance == closestDistance && closest.Count >= maxDevs) continue;
            if (distance < closestDistance) { closest.Clear(); closestDistance = distance; }
            closest.Add(pdev);
        }
        if (closest.Count == 0) return null;
        return closest[(random ?? Random.Shared).Next(closest.Count)];
    }

    /// <summary>
    /// pci_p2pdma_map_type: the cached map type of (provider, client), computing (and caching)
    /// it on a miss. NOT_SUPPORTED when the provider has no p2pdma state or there is no client.
    /// The cache is keyed by <see cref="PciFunction.MapTypesIndex"/> and, as in the kernel, not
    /// invalidated by later ACS or IOMMU changes.
    /// </summary>
    public static P2pMapType MapType(PciFunction provider, PciFunction? client)
    {
        ArgumentNullException.ThrowIfNull(provider);
        var p2p = provider.P2p;
        if (p2p == null || client == null) return P2pMapType.NotSupported;
        var type = p2p.LoadMapType(client.MapTypesIndex);
        return type == P2pMapType.Unknown ? CalcMapTypeAndDist(provider, client, out _, verbose: true) : type;
    }

    /// <summary>
    /// calc_map_type_and_dist: walks up from the provider; for each ancestor <c>a</c> walks up from
    /// the client looking for <c>a</c>. Records every redirecting node on the provider's side
    /// (including the common node) and on the client's side below the common node. A common node
    /// with no redirect on the path is BUS_ADDR; otherwise the host-bridge rule decides between
    /// THRU_HOST_BRIDGE and NOT_SUPPORTED. Stores the result in the provider's cache.
    /// </summary>
    internal static P2pMapType CalcMapTypeAndDist(PciFunction provider, PciFunction client, out int dist, bool verbose)
    {
        var mapType = P2pMapType.ThruHostBridge;
        bool acsRedirects = false;
        int acsCount = 0;
        StringBuilder? acsList = null;
        int distA = 0, distB = 0;
        PciFunction? a = provider, bb;
        bool common = false;

        while (a != null)
        {
            distB = 0;
            if (a.HasAcsRedirect) { acsCount++; (acsList ??= new()).Append(a.Name).Append(';'); }
            bb = client;
            while (bb != null)
            {
                if (a == bb) { common = true; break; }
                bb = bb.Upstream;
                distB++;
            }
            if (common) break;
            a = a.Upstream;
            distA++;
        }
        dist = distA + distB;

        if (common)
        {
            for (bb = client; bb != null && bb != a; bb = bb.Upstream)
                if (bb.HasAcsRedirect) { acsCount++; (acsList ??= new()).Append(bb.Name).Append(';'); }
            if (acsCount == 0)
            {
                mapType = P2pMapType.BusAddr;
                goto Done;
            }
            if (verbose)
            {
                client.Topology.Warn(client, $"ACS redirect is set between the client and provider ({provider.Name})");
                client.Topology.Warn(client, $"to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir={acsList!.ToString(0, acsList.Length - 1)}");
            }
            acsRedirects = true;
        }

        if (!provider.Topology.CpuSupportsP2pDma && !HostBridgeWhitelist(provider, client, acsRedirects))
        {
            if (verbose)
                client.Topology.Warn(client, $"cannot be used for peer-to-peer DMA as the client and provider ({provider.Name}) do not share an upstream bridge or whitelisted host bridge");
            mapType = P2pMapType.NotSupported;
        }

    Done:
        provider.P2p?.StoreMapType(client.MapTypesIndex, mapType);
        return mapType;
    }

    /// <summary>
    /// host_bridge_whitelist: same host bridge → allowed if it is listed; different host bridges
    /// → both listed and neither flagged "same host bridge only".
    /// </summary>
    internal static bool HostBridgeWhitelist(PciFunction a, PciFunction b, bool warn)
    {
        var hostA = a.HostBridge;
        var hostB = b.HostBridge;
        if (hostA == hostB) return IsWhitelisted(hostA, sameHostBridge: true, warn, a);
        return IsWhitelisted(hostA, sameHostBridge: false, warn, a) && IsWhitelisted(hostB, sameHostBridge: false, warn, b);
    }

    /// <summary>__host_bridge_whitelist for one host bridge, identified by <see cref="PciHostBridge.IdentifyingFunction"/>.</summary>
    internal static bool IsWhitelisted(PciHostBridge host, bool sameHostBridge, bool warn = false, PciFunction? forWarning = null)
    {
        var root = host.IdentifyingFunction;
        if (root == null) return false;
        foreach (var (vendor, device, flags) in Whitelist)
        {
            if (root.VendorId != vendor || (device != PciTopology.AnyId && root.DeviceId != device)) continue;
            if ((flags & WhitelistFlags.ReqSameHostBridge) != 0 && !sameHostBridge) return false;
            return true;
        }
        if (warn && forWarning != null)
            host.Topology.Warn(forWarning, $"Host bridge to this device is not supported for peer-to-peer DMA ({root.VendorId:x4}:{root.DeviceId:x4})");
        return false;
    }
}
