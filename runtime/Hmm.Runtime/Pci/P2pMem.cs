using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Pci;

/// <summary>
/// Simulates the p2pdma provider API of drivers/pci/p2pdma.c: <c>pci_p2pdma_add_resource</c>,
/// <c>pci_p2pmem_publish</c>, <c>pci_alloc_p2pmem</c> / <c>pci_free_p2pmem</c>,
/// <c>pci_p2pmem_virt_to_bus</c> and the <c>p2pmem/{size,available,published}</c> sysfs values
/// (reference/kernel-hmm.md G.1, provider side). Addresses are BAR CPU physical addresses
/// (the kernel hands out kernel virtual addresses of the same memory).
/// </summary>
public static class P2pMem
{
    /// <summary>
    /// pci_p2pdma_add_resource(pdev, bar, size, offset): EINVAL unless BAR <paramref name="bar"/>
    /// exists and is MEM, <paramref name="offset"/> &lt; its length, and size + offset ≤ length
    /// (<paramref name="size"/> 0 = the rest of the BAR); size and offset must be page multiples.
    /// Creates the provider state on first use, a <see cref="DevicePageKind.P2PDma"/> pagemap
    /// (owner = the function; the simulator rounds the pagemap up to 2 MiB, only
    /// <paramref name="size"/> bytes enter the pool) and adds the range to the genpool.
    /// </summary>
    public static Errno AddResource(PciFunction pdev, int bar, ulong size, ulong offset)
    {
        ArgumentNullException.ThrowIfNull(pdev);
        if ((uint)bar >= 6 || pdev.Bar(bar) is not { } b || b.Kind != PciBarKind.Memory) return Errno.EINVAL;
        if (offset >= b.Length) return Errno.EINVAL;
        if (size == 0) size = b.Length - offset;
        if (size + offset > b.Length) return Errno.EINVAL;
        if (!Page.IsAligned(size) || !Page.IsAligned(offset)) return Errno.EINVAL;
        var p2p = pdev.GetOrCreateP2p();
        ulong pgmapBytes = (size + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        var e = DevPagemap.Create(pdev.Topology.Machine, DevicePageKind.P2PDma, pgmapBytes, pdev, ops: null, out var pgmap);
        if (e != Errno.Ok) return e;
        p2p.AddResource(new P2pResource(b, offset, size, pgmap!));
        return Errno.Ok;
    }

    /// <summary>pci_p2pmem_publish: make (or stop making) the memory findable by <see cref="P2pDma.FindMany"/>. No-op without p2p state.</summary>
    public static void Publish(PciFunction pdev, bool publish = true)
    {
        ArgumentNullException.ThrowIfNull(pdev);
        if (pdev.P2p is { } p) p.Published = publish;
    }

    /// <summary>pci_alloc_p2pmem: <paramref name="size"/> bytes (page granular) of the provider's BAR memory; returns its CPU physical address, 0 on failure or without p2p state.</summary>
    public static ulong Alloc(PciFunction pdev, ulong size)
    {
        ArgumentNullException.ThrowIfNull(pdev);
        if (size == 0 || pdev.P2p is not { } p) return 0;
        return p.Alloc(size);
    }

    /// <summary>pci_free_p2pmem. Freeing memory that is not allocated is a <see cref="KernelBugException"/>.</summary>
    public static void Free(PciFunction pdev, ulong addr, ulong size)
    {
        ArgumentNullException.ThrowIfNull(pdev);
        if (pdev.P2p is not { } p || !p.Free(addr, size))
            throw new KernelBugException("P2P-R01", $"pci_free_p2pmem of 0x{addr:x} (+0x{size:x}) which {pdev} did not allocate");
    }

    /// <summary>pci_p2pmem_virt_to_bus: the PCI bus address of p2p memory (0 when not the provider's).</summary>
    public static ulong VirtToBus(PciFunction pdev, ulong addr)
    {
        ArgumentNullException.ThrowIfNull(pdev);
        return pdev.P2p?.ResourceOfCpu(addr) is { } r ? r.CpuToBus(addr) : 0;
    }

    /// <summary>sysfs p2pmem/size.</summary>
    public static ulong Size(PciFunction pdev) => pdev.P2p?.Size ?? 0;

    /// <summary>sysfs p2pmem/available.</summary>
    public static ulong Available(PciFunction pdev) => pdev.P2p?.Available ?? 0;

    /// <summary>
    /// The DMA address <paramref name="client"/> must use for the provider's memory at CPU
    /// physical <paramref name="cpuPhys"/> (pci_p2pdma_map_segment / the dma_map path): the bus
    /// address for BUS_ADDR, the CPU physical address for THRU_HOST_BRIDGE (the simulator does
    /// not allocate IOVAs), and ENOTSUPP-style failure (false) for NOT_SUPPORTED.
    /// </summary>
    public static bool TryDmaAddress(PciFunction provider, PciFunction client, ulong cpuPhys, out ulong dmaAddress, out P2pMapType type)
    {
        dmaAddress = 0;
        type = P2pDma.MapType(provider, client);
        if (provider.P2p?.ResourceOfCpu(cpuPhys) is not { } r) { type = P2pMapType.None; return false; }
        switch (type)
        {
            case P2pMapType.BusAddr: dmaAddress = r.CpuToBus(cpuPhys); return true;
            case P2pMapType.ThruHostBridge: dmaAddress = cpuPhys; return true;
            default: return false;
        }
    }
}
