using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Pci;

/// <summary>
/// Simulates <c>struct pci_p2pdma</c>: a provider function's p2p state — the map-type cache
/// (<c>map_types</c> xarray), the genpool of BAR memory handed out by
/// <see cref="P2pMem.Alloc"/>, the resources added with <see cref="P2pMem.AddResource"/> and the
/// published flag (reference/kernel-hmm.md G.1, provider side).
/// </summary>
public sealed class P2pProvider
{
    private readonly Dictionary<ulong, P2pMapType> _mapTypes = new();
    private readonly SpinLock _mapTypesLock = new("pci_p2pdma.map_types");
    private readonly List<P2pResource> _resources = new();
    private readonly SpinLock _poolLock = new("pci_p2pdma.pool");
    private long _mapTypeHits;
    private volatile bool _published;

    internal P2pProvider(PciFunction function) => Function = function;

    /// <summary>The provider function (pdev).</summary>
    public PciFunction Function { get; }

    /// <summary>p2pmem_published: whether <see cref="P2pDma.FindMany"/> may pick this provider.</summary>
    public bool Published { get => _published; internal set => _published = value; }

    /// <summary>The resources (BAR ranges) added, each with its ZONE_DEVICE pagemap.</summary>
    public IReadOnlyList<P2pResource> Resources
    {
        get
        {
            _poolLock.Lock();
            try { return _resources.ToArray(); }
            finally { _poolLock.Unlock(); }
        }
    }

    /// <summary>gen_pool_size: bytes of p2p memory in the pool (sysfs p2pmem/size).</summary>
    public ulong Size
    {
        get
        {
            _poolLock.Lock();
            try { ulong n = 0; foreach (var r in _resources) n += r.Size; return n; }
            finally { _poolLock.Unlock(); }
        }
    }

    /// <summary>gen_pool_avail: bytes not allocated (sysfs p2pmem/available).</summary>
    public ulong Available
    {
        get
        {
            _poolLock.Lock();
            try { ulong n = 0; foreach (var r in _resources) n += (ulong)r.FreePages * Page.Size; return n; }
            finally { _poolLock.Unlock(); }
        }
    }

    /// <summary>How many map-type look-ups (<see cref="P2pDma.MapType"/>) the cache answered.</summary>
    public long MapTypeCacheHits => Interlocked.Read(ref _mapTypeHits);

    /// <summary>The cached map type for a client's <see cref="PciFunction.MapTypesIndex"/> (Unknown when absent).</summary>
    public P2pMapType CachedMapType(ulong mapTypesIndex)
    {
        _mapTypesLock.Lock();
        try { return _mapTypes.TryGetValue(mapTypesIndex, out var t) ? t : P2pMapType.Unknown; }
        finally { _mapTypesLock.Unlock(); }
    }

    internal P2pMapType LoadMapType(ulong index)
    {
        var t = CachedMapType(index);
        if (t != P2pMapType.Unknown) Interlocked.Increment(ref _mapTypeHits);
        return t;
    }

    internal void StoreMapType(ulong index, P2pMapType type)
    {
        _mapTypesLock.Lock();
        try { _mapTypes[index] = type; }
        finally { _mapTypesLock.Unlock(); }
    }

    internal void AddResource(P2pResource r)
    {
        _poolLock.Lock();
        try { _resources.Add(r); }
        finally { _poolLock.Unlock(); }
    }

    internal ulong Alloc(ulong size)
    {
        int pages = checked((int)((size + Page.OffsetMask) >> Page.Shift));
        _poolLock.Lock();
        try
        {
            foreach (var r in _resources)
            {
                ulong addr = r.TryAllocate(pages);
                if (addr != 0) return addr;
            }
            return 0;
        }
        finally { _poolLock.Unlock(); }
    }

    internal bool Free(ulong cpuPhys, ulong size)
    {
        int pages = checked((int)((size + Page.OffsetMask) >> Page.Shift));
        _poolLock.Lock();
        try
        {
            foreach (var r in _resources)
                if (r.ContainsCpu(cpuPhys)) return r.Free(cpuPhys, pages);
            return false;
        }
        finally { _poolLock.Unlock(); }
    }

    /// <summary>The resource holding CPU physical address <paramref name="cpuPhys"/>, or null.</summary>
    public P2pResource? ResourceOfCpu(ulong cpuPhys)
    {
        _poolLock.Lock();
        try { foreach (var r in _resources) if (r.ContainsCpu(cpuPhys)) return r; return null; }
        finally { _poolLock.Unlock(); }
    }

    /// <summary>The resource holding PCI bus address <paramref name="bus"/>, or null.</summary>
    public P2pResource? ResourceOfBus(ulong bus)
    {
        _poolLock.Lock();
        try { foreach (var r in _resources) if (r.ContainsBus(bus)) return r; return null; }
        finally { _poolLock.Unlock(); }
    }
}

/// <summary>
/// One <c>pci_p2pdma_add_resource</c> range: [<see cref="CpuPhysStart"/>, +<see cref="Size"/>)
/// of a MEM BAR, hot-plugged as a <see cref="DevicePageKind.P2PDma"/> <see cref="DevPagemap"/>
/// (whose pfns are the simulator's own numbering; page i of the range is pfn
/// <c>Pagemap.FirstPfn + i</c>), and its slice of the genpool (first-fit over pages).
/// </summary>
public sealed class P2pResource
{
    private readonly bool[] _used;

    internal P2pResource(PciBar bar, ulong offset, ulong size, DevPagemap pagemap)
    {
        Bar = bar;
        Offset = offset;
        Size = size;
        Pagemap = pagemap;
        _used = new bool[size >> Page.Shift];
        FreePages = _used.Length;
    }

    /// <summary>The BAR.</summary>
    public PciBar Bar { get; }

    /// <summary>Offset of the range in the BAR.</summary>
    public ulong Offset { get; }

    /// <summary>Bytes in the range.</summary>
    public ulong Size { get; }

    /// <summary>The MEMORY_DEVICE_PCI_P2PDMA pagemap (its bytes are the BAR's memory).</summary>
    public DevPagemap Pagemap { get; }

    /// <summary>CPU physical address of the first byte.</summary>
    public ulong CpuPhysStart => Bar.CpuPhysStart + Offset;

    /// <summary>PCI bus address of the first byte (CPU phys + bus_offset).</summary>
    public ulong BusStart => Bar.BusStart + Offset;

    /// <summary>Pages not allocated.</summary>
    public int FreePages { get; private set; }

    /// <summary>Whether the CPU physical address falls in the range.</summary>
    public bool ContainsCpu(ulong cpuPhys) => cpuPhys - CpuPhysStart < Size;

    /// <summary>Whether the bus address falls in the range.</summary>
    public bool ContainsBus(ulong bus) => bus - BusStart < Size;

    /// <summary>pci_p2pmem_virt_to_bus for an address of this range.</summary>
    public ulong CpuToBus(ulong cpuPhys) => unchecked(cpuPhys + (ulong)Bar.BusOffset);

    /// <summary>The pagemap pfn backing CPU physical address <paramref name="cpuPhys"/>.</summary>
    public ulong PfnOf(ulong cpuPhys) => Pagemap.FirstPfn + ((cpuPhys - CpuPhysStart) >> Page.Shift);

    /// <summary>The BAR memory's bytes at <paramref name="cpuPhys"/> to the end of its page (what a peer's DMA reaches).</summary>
    public Span<byte> BytesAt(ulong cpuPhys) => Pagemap.DeviceBytes(PfnOf(cpuPhys))[(int)(cpuPhys & Page.OffsetMask)..];

    internal ulong TryAllocate(int pages)
    {
        if (pages <= 0 || pages > FreePages) return 0;
        int run = 0;
        for (int i = 0; i < _used.Length; i++)
        {
            run = _used[i] ? 0 : run + 1;
            if (run == pages)
            {
                int first = i - pages + 1;
                for (int j = first; j <= i; j++) _used[j] = true;
                FreePages -= pages;
                return CpuPhysStart + ((ulong)first << Page.Shift);
            }
        }
        return 0;
    }

    internal bool Free(ulong cpuPhys, int pages)
    {
        int first = (int)((cpuPhys - CpuPhysStart) >> Page.Shift);
        if (first + pages > _used.Length) return false;
        for (int j = first; j < first + pages; j++)
        {
            if (!_used[j]) throw new KernelBugException("P2P-R01", $"pci_free_p2pmem of 0x{CpuPhysStart + ((ulong)j << Page.Shift):x}, which is not allocated");
            _used[j] = false;
        }
        FreePages += pages;
        return true;
    }
}
