using Hmm.Runtime.Mirror;

namespace Hmm.Runtime.Devices;

/// <summary>
/// Simulates <c>struct hmm_dma_map</c> with hmm_dma_map_alloc / hmm_dma_map_pfn /
/// hmm_dma_unmap_pfn (kernel-hmm.md B.5, include/linux/hmm-dma.h; the helper mlx5 ODP uses,
/// drivers.md B.7). <see cref="Pfns"/> is the hmm_pfns array handed to hmm_range_fault; its
/// sticky <see cref="HmmPfn.DmaMapped"/> bit survives the fault and tells
/// <see cref="MapPfn"/> the entry is already mapped (the permission-resync case). This model
/// uses the per-entry "dma address list" variant: each entry is mapped on its own,
/// DMA_BIDIRECTIONAL (write = true), and its bus address kept in a preallocated list, so the
/// hot path allocates nothing. P2P pages (HMM_PFN_P2PDMA / _BUS) are not modelled.
/// Serialised by the caller (the driver's update lock), like the kernel helper.
/// </summary>
[Hmm.Dsl.SystemPagesOnly]
public sealed class HmmDmaMap
{
    private readonly Iommu _iommu;
    private readonly ulong[] _dma;

    /// <summary>hmm_dma_map_alloc: room for <paramref name="entries"/> pages mapped through <paramref name="iommu"/>.</summary>
    public HmmDmaMap(Iommu iommu, int entries)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(entries, 1);
        _iommu = iommu;
        Pfns = new ulong[entries];
        _dma = new ulong[entries];
    }

    /// <summary>The pfn list: pass it as the range's hmm_pfns.</summary>
    public ulong[] Pfns { get; }

    /// <summary>Entries currently DMA-mapped.</summary>
    public int MappedCount { get; private set; }

    /// <summary>The bus address recorded for entry <paramref name="index"/> (valid while it is DMA-mapped).</summary>
    public ulong DmaAddress(int index) => _dma[index];

    /// <summary>
    /// hmm_dma_map_pfn: the bus address of entry <paramref name="index"/>. An entry already
    /// tagged <see cref="HmmPfn.DmaMapped"/> returns its existing address without a new
    /// mapping; otherwise the entry's pfn is mapped and the tag set. A non-VALID entry, or IOVA
    /// exhaustion, gives <see cref="Iommu.MappingError"/>.
    /// </summary>
    public ulong MapPfn(int index)
    {
        ulong word = Pfns[index];
        if ((word & HmmPfn.DmaMapped) != 0 && (word & HmmPfn.P2PDmaBus) == 0) return _dma[index];
        if (!HmmPfn.IsValid(word)) return Iommu.MappingError;
        ulong bus = _iommu.DmaMap(HmmPfn.ToPfn(word), 1, write: true);
        if (bus == Iommu.MappingError) return bus;
        _dma[index] = bus;
        Pfns[index] = word | HmmPfn.DmaMapped;
        MappedCount++;
        return bus;
    }

    /// <summary>
    /// hmm_dma_unmap_pfn: false unless the entry is VALID and DMA_MAPPED; otherwise unmaps it and
    /// clears the three sticky bits (DMA_MAPPED, P2PDMA, P2PDMA_BUS).
    /// </summary>
    public bool UnmapPfn(int index)
    {
        ulong word = Pfns[index];
        if ((word & (HmmPfn.Valid | HmmPfn.DmaMapped)) != (HmmPfn.Valid | HmmPfn.DmaMapped)) return false;
        _iommu.DmaUnmap(_dma[index], 1);
        Pfns[index] = word & ~HmmPfn.InOutFlags;
        _dma[index] = 0;
        MappedCount--;
        return true;
    }
}
