using System.Numerics;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Devices;

/// <summary>Why the IOMMU refused a device access.</summary>
public enum IommuFaultReason : byte
{
    /// <summary>Nothing is mapped at the bus address for this device (a stray DMA).</summary>
    NotMapped = 0,
    /// <summary>A write to a mapping made DMA_TO_DEVICE (read-only for the device).</summary>
    ReadOnly = 1,
}

/// <summary>One IOMMU fault record (the "DMAR: [DMA Write] Request device [..] fault addr .." log line).</summary>
/// <param name="Device">The device whose domain refused the access.</param>
/// <param name="BusAddress">The bus (IOVA) address the device used.</param>
/// <param name="Write">Whether the access was a write.</param>
/// <param name="Reason">Not mapped, or a write to a read-only mapping.</param>
public readonly record struct IommuFault(string Device, ulong BusAddress, bool Write, IommuFaultReason Reason);

/// <summary>
/// Simulates one device's DMA view: its IOMMU domain (iommu_domain + dma-iommu IOVA allocator)
/// when <see cref="Enabled"/>, or dma-direct (bus address = physical address) when not
/// (kernel-hmm.md B.5, G.1; drivers.md B.7).
/// <para>
/// <b>IOMMU on</b>: <see cref="DmaMap"/> allocates page-granular IOVA in
/// [<see cref="IovaBase"/>, +<see cref="IovaPages"/> pages) (first fit, rotating cursor) and
/// maps it to the pfns; the device reaches ONLY what is mapped for it: any other access is
/// refused by <see cref="Translate"/> and recorded as an <see cref="IommuFault"/> — never a
/// silent access to someone else's memory. <b>IOMMU off</b>: bus address = pfn &lt;&lt; 12,
/// every physical page is reachable by <see cref="Translate"/> whether mapped or not (the
/// isolation loss: a buggy or malicious device can read and write any RAM), and write
/// permission is not enforced. Mappings are still tracked (as CONFIG_DMA_API_DEBUG does) so an
/// unmap of something not mapped is a <see cref="KernelBugException"/> in both modes.
/// </para>
/// <para>
/// Concurrency: <see cref="DmaMap"/>/<see cref="DmaUnmap"/> serialise on an internal spinlock;
/// <see cref="Translate"/> is lock-free (entries are 64-bit words read/written with
/// <see cref="Volatile"/>) and may run on device threads concurrently with them. Hot paths
/// allocate nothing once the page-table chunks they touch exist (fault records go to a
/// preallocated ring).
/// </para>
/// </summary>
public sealed class Iommu
{
    /// <summary>DMA_MAPPING_ERROR: returned by <see cref="DmaMap"/> when IOVA space is exhausted.</summary>
    public const ulong MappingError = ulong.MaxValue;

    /// <summary>Default IOVA base: 4 GiB, so bus addresses never look like physical addresses in tests.</summary>
    public const ulong DefaultIovaBase = 1UL << 32;

    private const ulong Present = 1UL << 63;
    private const ulong WriteBit = 1UL << 62;
    private const ulong PfnMask = (1UL << 52) - 1;
    private const int ChunkShift = 9;
    private const int ChunkMask = (1 << ChunkShift) - 1;

    private readonly SpinLock _lock;
    private readonly ulong[] _iovaUsed;
    private ulong _cursor;
    private ulong[]?[] _chunks; // IOMMU on: IOVA page → Present|Write|pfn. Off: pfn → outstanding map count.
    private readonly IommuFault[] _faultRing;
    private long _faultCount;
    private long _mappedPages;

    /// <summary>Creates the DMA view of <paramref name="device"/>.</summary>
    /// <param name="device">Device name used in fault records.</param>
    /// <param name="enabled">IOMMU translation on (isolation) or off (dma-direct).</param>
    /// <param name="iovaPages">IOVA space size in pages (IOMMU on); a multiple of 64.</param>
    /// <param name="iovaBase">First IOVA (page aligned).</param>
    /// <param name="faultLog">Fault records kept (a ring; <see cref="FaultCount"/> counts all).</param>
    public Iommu(string device, bool enabled, int iovaPages = 1 << 20, ulong iovaBase = DefaultIovaBase, int faultLog = 256)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(iovaPages, 64);
        ArgumentOutOfRangeException.ThrowIfLessThan(faultLog, 1);
        if (!Page.IsAligned(iovaBase)) throw new ArgumentException("IOVA base must be page aligned", nameof(iovaBase));
        Device = device;
        Enabled = enabled;
        IovaBase = iovaBase;
        IovaPages = iovaPages & ~63;
        _lock = new SpinLock("iommu_domain");
        _iovaUsed = enabled ? new ulong[IovaPages / 64] : [];
        _chunks = new ulong[]?[enabled ? (IovaPages + ChunkMask) >> ChunkShift : 64];
        _faultRing = new IommuFault[faultLog];
    }

    /// <summary>The device this domain belongs to.</summary>
    public string Device { get; }

    /// <summary>Whether the IOMMU translates (and isolates) this device's DMA.</summary>
    public bool Enabled { get; }

    /// <summary>First IOVA handed out (IOMMU on).</summary>
    public ulong IovaBase { get; }

    /// <summary>Size of the IOVA space in pages (IOMMU on).</summary>
    public int IovaPages { get; }

    /// <summary>Pages currently DMA-mapped (each dma_map of n pages counts n).</summary>
    public long MappedPages => Volatile.Read(ref _mappedPages);

    /// <summary>IOMMU faults recorded since creation.</summary>
    public long FaultCount => Volatile.Read(ref _faultCount);

    /// <summary>Copies the most recent fault records (oldest first) into <paramref name="destination"/>; returns how many.</summary>
    public int ReadFaults(Span<IommuFault> destination)
    {
        long total = FaultCount;
        int kept = (int)Math.Min(total, _faultRing.Length);
        int n = Math.Min(kept, destination.Length);
        for (int i = 0; i < n; i++) destination[i] = _faultRing[(int)((total - kept + i) % _faultRing.Length)];
        return n;
    }

    /// <summary>
    /// dma_map_page for <paramref name="pages"/> contiguous pages from <paramref name="pfn"/>:
    /// the bus address the device must use. <paramref name="write"/> false = DMA_TO_DEVICE (the
    /// device may only read). <see cref="MappingError"/> when IOVA space is exhausted.
    /// </summary>
    public ulong DmaMap(ulong pfn, int pages, bool write)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pages, 1);
        if (pfn > PfnMask) throw new ArgumentOutOfRangeException(nameof(pfn));
        _lock.Lock();
        try
        {
            if (!Enabled)
            {
                for (int i = 0; i < pages; i++) Slot(pfn + (ulong)i, grow: true)++;
                _mappedPages += pages;
                return pfn << Page.Shift;
            }
            if (!TryAllocIova(pages, out ulong first)) return MappingError;
            for (int i = 0; i < pages; i++)
                Volatile.Write(ref Slot(first + (ulong)i, grow: true), Present | (write ? WriteBit : 0) | (pfn + (ulong)i));
            _mappedPages += pages;
            return IovaBase + (first << Page.Shift);
        }
        finally
        {
            _lock.Unlock();
        }
    }

    /// <summary>
    /// dma_map_page followed by the dma_mapping_error check, as drivers write it: true with the
    /// bus address in <paramref name="busAddress"/>, false (nothing mapped) when IOVA space is
    /// exhausted. The mapping must be undone with <see cref="DmaUnmap"/> on every path — or the
    /// address stored in the device's table, whose teardown unmaps it (the analyzers check the pair,
    /// HMM1025). <see cref="DmaMap"/>'s in-band <see cref="MappingError"/> cannot say when the
    /// reference was taken, so only this form carries the contract.
    /// </summary>
    [Hmm.Dsl.AcquiresReference("dma", "busAddress", When = Hmm.Dsl.AcquiredWhen.ReturnsTrue)]
    public bool TryDmaMap(ulong pfn, int pages, bool write, out ulong busAddress)
    {
        busAddress = DmaMap(pfn, pages, write);
        if (busAddress != MappingError) return true;
        busAddress = 0;
        return false;
    }

    /// <summary>
    /// dma_unmap_page of a mapping returned by <see cref="DmaMap"/>. Unmapping anything not
    /// mapped (twice, wrong address, wrong size) is a driver bug.
    /// </summary>
    /// <exception cref="KernelBugException">DMA-R01: some page of the range is not mapped.</exception>
    [Hmm.Dsl.ReleasesReference("dma", "busAddress")]
    public void DmaUnmap(ulong busAddress, int pages)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pages, 1);
        _lock.Lock();
        try
        {
            bool ok = Page.IsAligned(busAddress);
            ulong first = 0;
            if (ok)
            {
                first = Enabled ? (busAddress - IovaBase) >> Page.Shift : busAddress >> Page.Shift;
                ok = (!Enabled || (busAddress >= IovaBase && first + (ulong)pages <= (ulong)IovaPages));
            }
            for (int i = 0; ok && i < pages; i++)
                ok = Peek(first + (ulong)i) != 0;
            if (!ok)
                throw new KernelBugException("DMA-R01", $"{Device}: dma_unmap of 0x{busAddress:x} (+{pages} pages) which is not mapped");
            for (int i = 0; i < pages; i++)
            {
                ref ulong slot = ref Slot(first + (ulong)i, grow: false);
                if (Enabled)
                {
                    Volatile.Write(ref slot, 0);
                    ulong p = first + (ulong)i;
                    _iovaUsed[p >> 6] &= ~(1UL << (int)(p & 63));
                }
                else
                {
                    slot--;
                }
            }
            _mappedPages -= pages;
        }
        finally
        {
            _lock.Unlock();
        }
    }

    /// <summary>
    /// The IOMMU walk for a device access at <paramref name="busAddress"/>: true with the
    /// target pfn, or false when the domain refuses it (recorded as an <see cref="IommuFault"/>).
    /// IOMMU off: always true, pfn = bus address &gt;&gt; 12 (no isolation).
    /// </summary>
    public bool Translate(ulong busAddress, bool write, out ulong pfn)
    {
        if (!Enabled)
        {
            pfn = busAddress >> Page.Shift;
            return true;
        }
        pfn = 0;
        ulong page = (busAddress - IovaBase) >> Page.Shift;
        ulong e = busAddress >= IovaBase && page < (ulong)IovaPages ? Peek(page) : 0;
        if ((e & Present) == 0)
        {
            RecordFault(busAddress, write, IommuFaultReason.NotMapped);
            return false;
        }
        if (write && (e & WriteBit) == 0)
        {
            RecordFault(busAddress, write, IommuFaultReason.ReadOnly);
            return false;
        }
        pfn = e & PfnMask;
        return true;
    }

    private void RecordFault(ulong busAddress, bool write, IommuFaultReason reason)
    {
        long n = Interlocked.Increment(ref _faultCount) - 1;
        _faultRing[(int)(n % _faultRing.Length)] = new IommuFault(Device, busAddress, write, reason);
    }

    private ulong Peek(ulong index)
    {
        var chunks = Volatile.Read(ref _chunks);
        ulong c = index >> ChunkShift;
        if (c >= (ulong)chunks.Length) return 0;
        var chunk = Volatile.Read(ref chunks[c]);
        return chunk is null ? 0 : Volatile.Read(ref chunk[(int)(index & ChunkMask)]);
    }

    private ref ulong Slot(ulong index, bool grow)
    {
        ulong c = index >> ChunkShift;
        if (c >= (ulong)_chunks.Length)
        {
            if (!grow) throw new InvalidOperationException("unreachable: slot beyond the table");
            ulong size = (ulong)_chunks.Length;
            while (size <= c) size *= 2;
            var grown = new ulong[]?[size];
            _chunks.CopyTo(grown, 0);
            Volatile.Write(ref _chunks, grown);
        }
        var chunk = _chunks[c];
        if (chunk is null)
        {
            chunk = new ulong[1 << ChunkShift];
            Volatile.Write(ref _chunks[c], chunk);
        }
        return ref chunk[(int)(index & ChunkMask)];
    }

    /// <summary>First-fit IOVA allocation from a rotating cursor over the used-page bitmap.</summary>
    private bool TryAllocIova(int pages, out ulong first)
    {
        ulong total = (ulong)IovaPages;
        ulong start = _cursor;
        ulong scanned = 0;
        ulong run = 0;
        ulong p = start;
        first = 0;
        while (scanned < total + (ulong)pages)
        {
            if (p == total)
            {
                p = 0;
                run = 0; // runs do not wrap
            }
            ulong word = _iovaUsed[p >> 6];
            if (run == 0 && (p & 63) == 0 && word == ulong.MaxValue)
            {
                p += 64;
                scanned += 64;
                continue;
            }
            if (run == 0 && (p & 63) == 0 && pages == 1)
            {
                p += (ulong)BitOperations.TrailingZeroCount(~word);
                run = 1;
                scanned++;
                first = p;
                break;
            }
            if ((word & (1UL << (int)(p & 63))) == 0)
            {
                if (run == 0) first = p;
                if (++run == (ulong)pages) break;
            }
            else
            {
                run = 0;
            }
            p++;
            scanned++;
        }
        if (run != (ulong)pages) return false;
        for (ulong i = first; i < first + (ulong)pages; i++) _iovaUsed[i >> 6] |= 1UL << (int)(i & 63);
        _cursor = (first + (ulong)pages) % total;
        return true;
    }
}
