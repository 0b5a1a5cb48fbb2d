using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Pci;
using SpinLock = Hmm.Runtime.Locking.SpinLock;

namespace Hmm.Samples.Nouveau;

/// <summary>
/// The exporter half of the HMM p2p proposal for nouveau (drivers.md B.13, "nouveau/dmem: HMM P2P
/// DMA for private dev pages"): BAR1 is exposed to PCI peers, VRAM chunks are mapped into BAR1
/// windows on demand, and a peer asking for a private page gets the BAR1 address backing it
/// (<see cref="IDevicePrivateP2pPages"/>). Off until <see cref="ExportVram"/>; without it every
/// peer's fault migrates the page back to system memory, as mainline does.
/// </summary>
public sealed partial class NouveauGpu : IDevicePrivateP2pPages
{
    private readonly SpinLock _bar1Lock = new("nouveau.bar1");
    private DevPagemap?[] _bar1Windows = [];
    private readonly HashSet<ulong> _refusedPfns = [];
    private PciBar? _bar1;
    private volatile bool _exportVram;
    private volatile bool _refusePeers;
    private long _p2pPagesExported, _p2pPagesRefused;

    /// <summary>
    /// Exposes VRAM to PCI peers through BAR1 (<paramref name="bar1Bytes"/>, a power of two; a BAR1
    /// smaller than VRAM holds only the first chunks asked for: pages of the others cannot be
    /// exported and their peers fall back to migration). EINVAL when not attached to a PCI function.
    /// </summary>
    public Errno ExportVram(ulong bar1Bytes = (ulong)DeviceMaxChunks * DeviceChunkBytes)
    {
        if (!IsAttached || Device.Pci is not { } pci) return Errno.EINVAL;
        if (bar1Bytes < (ulong)DeviceChunkBytes || (bar1Bytes & (bar1Bytes - 1)) != 0) return Errno.EINVAL;
        _bar1Lock.Lock();
        try
        {
            if (_bar1 == null)
            {
                _bar1 = pci.Bar(1) ?? pci.AddBar(1, bar1Bytes);
                _bar1Windows = new DevPagemap?[_bar1.Length / (ulong)DeviceChunkBytes];
            }
        }
        finally { _bar1Lock.Unlock(); }
        _exportVram = true;
        return Errno.Ok;
    }

    /// <summary>Whether peers are refused (the exporter's policy says no: every peer page falls back to migration).</summary>
    public bool RefusePeers { get => _refusePeers; set => _refusePeers = value; }

    /// <summary>
    /// Refuses peers the private page <paramref name="pfn"/> from now on (a page the exporter cannot map
    /// into BAR1, or one an ACS / bridge limit makes unreachable): peers fall back to migration for it.
    /// </summary>
    public void RefuseP2p(ulong pfn)
    {
        _bar1Lock.Lock();
        try { _refusedPfns.Add(pfn); }
        finally { _bar1Lock.Unlock(); }
    }

    /// <summary>BAR1, once <see cref="ExportVram"/> ran.</summary>
    public PciBar? Bar1 => _bar1;

    /// <summary>Private pages handed to peers as BAR1 addresses.</summary>
    public long P2pPagesExported => Interlocked.Read(ref _p2pPagesExported);

    /// <summary>Peer requests for a page that could not be exported (refused, or its chunk found no BAR1 window).</summary>
    public long P2pPagesRefused => Interlocked.Read(ref _p2pPagesRefused);

    /// <inheritdoc/>
    public PciFunction? ExporterFunction => _exportVram && IsAttached ? Device.Pci : null;

    /// <inheritdoc/>
    public bool AllowPeer(DevPagemap pgmap, PciFunction importer) => _exportVram && !_refusePeers && ReferenceEquals(pgmap.Ops, this);

    /// <summary>
    /// The BAR1 address of private page <paramref name="pfn"/>: its chunk is mapped into a free
    /// BAR1 window on first use (nouveau maps the chunk's buffer object into BAR1 on demand).
    /// EOPNOTSUPP when every window is taken by another chunk.
    /// </summary>
    public Errno P2pPage(DevPagemap pgmap, ulong pfn, PciFunction importer, out ulong busAddress)
    {
        ArgumentNullException.ThrowIfNull(pgmap);
        busAddress = 0;
        if (!AllowPeer(pgmap, importer) || !pgmap.Contains(pfn))
        {
            Interlocked.Increment(ref _p2pPagesRefused);
            return Errno.EPERM;
        }
        int window = -1;
        _bar1Lock.Lock();
        try
        {
            if (_refusedPfns.Contains(pfn)) window = -2;
            for (int i = 0; window != -2 && i < _bar1Windows.Length; i++)
            {
                if (ReferenceEquals(_bar1Windows[i], pgmap)) { window = i; break; }
                if (_bar1Windows[i] == null && window < 0) window = i;
            }
            if (window >= 0) _bar1Windows[window] ??= pgmap;
            else window = -1;
        }
        finally { _bar1Lock.Unlock(); }
        if (window < 0)
        {
            Interlocked.Increment(ref _p2pPagesRefused);
            return Errno.EOPNOTSUPP;
        }
        busAddress = _bar1!.BusStart + (ulong)window * (ulong)DeviceChunkBytes + ((pfn - pgmap.FirstPfn) << Page.Shift);
        Interlocked.Increment(ref _p2pPagesExported);
        return Errno.Ok;
    }

    /// <summary>The BAR1 decode: the VRAM page behind a BAR1 bus address (false outside a mapped window).</summary>
    public bool ResolveBus(ulong busAddress, out ulong pfn)
    {
        pfn = 0;
        var bar = _bar1;
        if (bar == null || busAddress - bar.BusStart >= bar.Length) return false;
        ulong offset = busAddress - bar.BusStart;
        var chunk = Volatile.Read(ref _bar1Windows[(int)(offset / (ulong)DeviceChunkBytes)]);
        if (chunk == null || chunk.IsRemoved) return false;
        pfn = chunk.FirstPfn + ((offset % (ulong)DeviceChunkBytes) >> Page.Shift);
        return true;
    }
}
