using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using Hmm.Runtime.Telemetry;

namespace Hmm.Runtime.Pci;

/// <summary>
/// The importer side of the p2p-through-VMA RFC (reference/kernel-hmm.md G.2): a device
/// (<see cref="Importer"/>) maps [<see cref="Start"/>, <see cref="End"/>) of another device's
/// special VMA for DMA. <see cref="Map"/> checks reachability (<see cref="P2pDma.Distance"/>;
/// NOT_SUPPORTED is refused), watches the range with an <see cref="IntervalNotifier"/> and asks
/// the exporter (<see cref="IP2pVmaOps.P2pMap"/>) inside the read_begin / read_retry protocol.
/// Any invalidation of the range — the exporter revoking with <see cref="Vma.ZapPtes"/>, munmap,
/// exit — calls <see cref="IP2pVmaOps.P2pUnmap"/> and drops the whole mapping, after which
/// device accesses fault (<see cref="Errno.EFAULT"/>) until <see cref="Map"/> runs again.
/// An exporter's refusal is returned as is.
/// </summary>
public sealed class P2pVmaImport : IIntervalNotifierOps, IDisposable
{
    private readonly KernelMutex _lock = new("p2p_import.lock");
    private readonly IntervalNotifier _notifier;
    private readonly ulong[] _addresses;
    private Vma? _vma;
    private IP2pVmaOps? _ops;
    private bool _mapped;
    private bool _inserted;
    private long _revocations;

    /// <summary>Prepares an import (nothing mapped yet). The range must be page aligned and non-empty.</summary>
    public P2pVmaImport(PciFunction importer, AddressSpace mm, ulong start, ulong end, bool write, DeviceMeters? meters = null)
    {
        ArgumentNullException.ThrowIfNull(importer);
        ArgumentNullException.ThrowIfNull(mm);
        if (!Page.IsAligned(start) || !Page.IsAligned(end) || end <= start) throw new ArgumentException("bad range");
        Importer = importer;
        Mm = mm;
        Start = start;
        End = end;
        Write = write;
        Meters = meters;
        _addresses = new ulong[(end - start) >> Page.Shift];
        _notifier = new IntervalNotifier(this);
    }

    /// <summary>The importing function.</summary>
    public PciFunction Importer { get; }

    /// <summary>The address space holding the exporter's VMA.</summary>
    public AddressSpace Mm { get; }

    /// <summary>First address (inclusive).</summary>
    public ulong Start { get; }

    /// <summary>End (exclusive).</summary>
    public ulong End { get; }

    /// <summary>Whether the importer asked for write access.</summary>
    public bool Write { get; }

    /// <summary>Where p2p maps are counted, if anywhere.</summary>
    public DeviceMeters? Meters { get; }

    /// <summary>The map type of the last successful <see cref="Map"/>.</summary>
    public P2pMapType MapType { get; private set; } = P2pMapType.Unknown;

    /// <summary>Whether the importer currently holds a mapping.</summary>
    public bool IsMapped
    {
        get { _lock.Lock(); try { return _mapped; } finally { _lock.Unlock(); } }
    }

    /// <summary>How many times an invalidation tore the mapping down.</summary>
    public long Revocations => Interlocked.Read(ref _revocations);

    /// <summary>
    /// Maps (or re-maps) the range. EFAULT when the range is not inside one VMA, EINVAL when the
    /// VMA has no p2p hooks, EOPNOTSUPP when the importer cannot reach the exporter
    /// (NOT_SUPPORTED), the exporter's errno when it refuses. May sleep; call without the mmap lock.
    /// </summary>
    public Errno Map()
    {
        LockValidator.MightSleep("p2p_vma_import");
        if (!_inserted)
        {
            var e = _notifier.Insert(Mm, Start, End - Start);
            if (e != Errno.Ok) return e;
            _inserted = true;
        }
        while (true)
        {
            ulong seq = _notifier.ReadBegin();
            Vma? vma;
            IP2pVmaOps? ops;
            long r;
            P2pMapType type;
            Mm.MmapLock.ReadLock();
            try
            {
                vma = Mm.FindVma(Start);
                if (vma == null || vma.Start > Start || vma.End < End) return Errno.EFAULT;
                ops = vma.Ops as IP2pVmaOps;
                if (ops == null) return Errno.EINVAL;
                if (P2pDma.Distance(ops.Exporter, Importer, out type, verbose: true) < 0) return Errno.EOPNOTSUPP;
                r = ops.P2pMap(vma, Importer, Start, End, _addresses, Write);
            }
            finally { Mm.MmapLock.ReadUnlock(); }
            if (r < 0) return (Errno)(int)-r;
            _lock.Lock();
            if (_notifier.ReadRetry(seq))
            {
                _lock.Unlock();
                ops.P2pUnmap(vma, Importer, Start, End);
                continue;
            }
            bool wasMapped = _mapped;
            _vma = vma;
            _ops = ops;
            _mapped = true;
            MapType = type;
            _lock.Unlock();
            if (!wasMapped) Meters?.AddP2pMaps(1);
            return Errno.Ok;
        }
    }

    /// <summary>
    /// The DMA address the importer uses for <paramref name="address"/>; EFAULT (a device fault)
    /// when the range is not mapped (never mapped, or revoked by an invalidation).
    /// </summary>
    public Errno Translate(ulong address, out ulong dmaAddress)
    {
        dmaAddress = 0;
        if (address < Start || address >= End) return Errno.EFAULT;
        _lock.Lock();
        try
        {
            if (!_mapped) return Errno.EFAULT;
            dmaAddress = _addresses[(address - Start) >> Page.Shift] + (address & Page.OffsetMask);
            return Errno.Ok;
        }
        finally { _lock.Unlock(); }
    }

    /// <summary>A DMA read by the importer through the mapping (EFAULT when not mapped, EIO when the address resolves to no p2p memory).</summary>
    public Errno DmaRead(ulong address, Span<byte> buffer) => Dma(address, buffer, default, write: false);

    /// <summary>A DMA write by the importer through the mapping (EFAULT when not mapped; EACCES when imported read-only).</summary>
    public Errno DmaWrite(ulong address, ReadOnlySpan<byte> data) => Write ? Dma(address, default, data, write: true) : Errno.EACCES;

    private Errno Dma(ulong address, Span<byte> into, ReadOnlySpan<byte> from, bool write)
    {
        int length = write ? from.Length : into.Length;
        if (address + (ulong)length > End || address < Start) return Errno.EFAULT;
        _lock.Lock();
        try
        {
            int done = 0;
            while (done < length)
            {
                if (!_mapped) return Errno.EFAULT;
                ulong va = address + (ulong)done;
                ulong dma = _addresses[(va - Start) >> Page.Shift] + (va & Page.OffsetMask);
                var p2p = _ops!.Exporter.P2p;
                var res = MapType == P2pMapType.BusAddr ? p2p?.ResourceOfBus(dma) : p2p?.ResourceOfCpu(dma);
                if (res == null) return Errno.EIO;
                ulong cpu = MapType == P2pMapType.BusAddr ? dma - (res.BusStart - res.CpuPhysStart) : dma;
                var bytes = res.BytesAt(cpu);
                int n = Math.Min(bytes.Length, length - done);
                if (write) from.Slice(done, n).CopyTo(bytes);
                else bytes[..n].CopyTo(into.Slice(done, n));
                done += n;
            }
            return Errno.Ok;
        }
        finally { _lock.Unlock(); }
    }

    /// <summary>
    /// The mmu interval notifier callback: under the importer lock, set the sequence, call the
    /// exporter's p2p_unmap for the range and drop the mapping. Non-blockable ranges try-lock.
    /// </summary>
    bool IIntervalNotifierOps.Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        if (range.Blockable) _lock.Lock();
        else if (!_lock.TryLock()) return false;
        try
        {
            notifier.SetSeq(curSeq);
            if (_mapped)
            {
                _ops!.P2pUnmap(_vma!, Importer, Start, End);
                _mapped = false;
                Interlocked.Increment(ref _revocations);
            }
            return true;
        }
        finally { _lock.Unlock(); }
    }

    /// <summary>Drops the mapping (p2p_unmap) and removes the notifier. Call without the mmap lock.</summary>
    public void Dispose()
    {
        if (_inserted) { _notifier.Remove(); _inserted = false; }
        _lock.Lock();
        try
        {
            if (_mapped) { _ops!.P2pUnmap(_vma!, Importer, Start, End); _mapped = false; }
        }
        finally { _lock.Unlock(); }
    }

    /// <inheritdoc/>
    public override string ToString() => $"p2p import by {Importer.Name} of [0x{Start:x}, 0x{End:x}){(_mapped ? " mapped" : "")}";
}
