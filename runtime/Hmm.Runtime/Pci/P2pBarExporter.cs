using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Pci;

/// <summary>
/// A reference exporting driver for the p2p-through-VMA RFC (reference/kernel-hmm.md G.2): each
/// mmap of its device file gets VMA-length BAR memory from the function's p2pdma pool
/// (<see cref="P2pMem.Alloc"/>) and is <b>not</b> CPU-mapped (CPU access → SIGBUS). Peers map it
/// with <see cref="IP2pVmaOps.P2pMap"/> subject to <see cref="Policy"/>; the driver revokes with
/// <see cref="Revoke"/> (zap_vma_ptes → an invalidation every importer obeys).
/// </summary>
public sealed class P2pBarExporter : IP2pVmaOps
{
    /// <summary>The exporter's decision for one p2p_map request: <see cref="Errno.Ok"/> to allow, an errno to refuse.</summary>
    public delegate Errno P2pPolicy(Vma vma, PciFunction importer, ulong start, ulong end, bool write);

    private readonly KernelMutex _lock = new("p2p_exporter.lock");
    private readonly Dictionary<Vma, ulong> _backing = new();
    private readonly List<(Vma Vma, PciFunction Importer, ulong Start, ulong End)> _mappings = new();
    private long _maps, _unmaps, _refusals;

    /// <summary>An exporter for <paramref name="exporter"/>, which must have p2p memory (<see cref="P2pMem.AddResource"/>).</summary>
    public P2pBarExporter(PciFunction exporter)
    {
        ArgumentNullException.ThrowIfNull(exporter);
        Exporter = exporter;
    }

    /// <inheritdoc/>
    public PciFunction Exporter { get; }

    /// <summary>The driver's p2p policy; null allows every request.</summary>
    public P2pPolicy? Policy { get; set; }

    /// <summary>Successful p2p_map calls.</summary>
    public long Maps => Interlocked.Read(ref _maps);

    /// <summary>p2p_unmap calls.</summary>
    public long Unmaps => Interlocked.Read(ref _unmaps);

    /// <summary>Requests the policy refused.</summary>
    public long Refusals => Interlocked.Read(ref _refusals);

    /// <summary>Importer mappings currently outstanding.</summary>
    public int ActiveMappings
    {
        get { _lock.Lock(); try { return _mappings.Count; } finally { _lock.Unlock(); } }
    }

    /// <summary>The CPU physical address of the BAR memory backing <paramref name="vma"/> (0 if none).</summary>
    public ulong BackingOf(Vma vma)
    {
        _lock.Lock();
        try { return _backing.TryGetValue(vma, out var a) ? a : 0; }
        finally { _lock.Unlock(); }
    }

    /// <summary>f_op->mmap: reserve BAR memory for the VMA; insert no CPU mapping. ENOMEM when the pool is short.</summary>
    public Errno Mmap(Vma vma)
    {
        ulong addr = P2pMem.Alloc(Exporter, vma.Length);
        if (addr == 0) return Errno.ENOMEM;
        _lock.Lock();
        try { _backing[vma] = addr; }
        finally { _lock.Unlock(); }
        return Errno.Ok;
    }

    /// <summary>vm_ops->close: give the BAR memory back. Importers were invalidated (UNMAP) before.</summary>
    public void Close(Vma vma)
    {
        ulong addr;
        _lock.Lock();
        try
        {
            if (!_backing.Remove(vma, out addr)) return;
            _mappings.RemoveAll(m => m.Vma == vma);
        }
        finally { _lock.Unlock(); }
        P2pMem.Free(Exporter, addr, vma.Length);
    }

    /// <inheritdoc/>
    public long P2pMap(Vma vma, PciFunction importer, ulong start, ulong end, Span<ulong> busAddresses, bool write)
    {
        if (Policy?.Invoke(vma, importer, start, end, write) is { } verdict && verdict != Errno.Ok)
        {
            Interlocked.Increment(ref _refusals);
            return -(long)verdict;
        }
        if (write && (vma.Flags & VmFlags.Write) == 0) return -(long)Errno.EACCES;
        _lock.Lock();
        try
        {
            if (!_backing.TryGetValue(vma, out ulong backing)) return -(long)Errno.EINVAL;
            long pages = (long)((end - start) >> Page.Shift);
            if (busAddresses.Length < pages) return -(long)Errno.EINVAL;
            for (long i = 0; i < pages; i++)
            {
                ulong cpu = backing + (start - vma.Start) + ((ulong)i << Page.Shift);
                if (!P2pMem.TryDmaAddress(Exporter, importer, cpu, out busAddresses[(int)i], out _)) return -(long)Errno.EOPNOTSUPP;
            }
            _mappings.Add((vma, importer, start, end));
            Interlocked.Increment(ref _maps);
            return pages;
        }
        finally { _lock.Unlock(); }
    }

    /// <inheritdoc/>
    public long P2pUnmap(Vma vma, PciFunction importer, ulong start, ulong end)
    {
        _lock.Lock();
        try
        {
            int i = _mappings.FindIndex(m => m.Vma == vma && m.Importer == importer && m.Start == start && m.End == end);
            if (i >= 0) _mappings.RemoveAt(i);
            Interlocked.Increment(ref _unmaps);
            return 0;
        }
        finally { _lock.Unlock(); }
    }

    /// <summary>
    /// Revokes every importer's mapping of [<paramref name="start"/>, <paramref name="end"/>) of
    /// <paramref name="vma"/>: zap_vma_ptes, i.e. a CLEAR invalidation over the range that each
    /// importer answers with p2p_unmap. Call without the mmap lock (or with it held for write).
    /// </summary>
    public Errno Revoke(Vma vma, ulong start, ulong end) => vma.ZapPtes(start, end - start);
}
