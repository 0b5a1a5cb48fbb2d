using Hmm.Runtime.Scheduling;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Telemetry;

namespace Hmm.Runtime.Devices;

/// <summary>One page (or 2 MiB folio) copy for a <see cref="CopyEngine"/>.</summary>
/// <param name="SrcPfn">Source page: system RAM or device memory.</param>
/// <param name="DstPfn">Destination page.</param>
/// <param name="Order">0 for 4 KiB, 9 for 2 MiB.</param>
public readonly record struct PageCopy(ulong SrcPfn, ulong DstPfn, int Order = 0);

/// <summary>
/// A device's DMA copy engine: batched page copies between system memory and device memory
/// (private device memory included — the engine is the only way the host side reaches it).
/// Migration code allocates destinations, queues copies here, then commits (MIG-R06: the copy
/// completes before finalize). Synchronous; simulated time is charged by the device layer.
/// </summary>
public sealed class CopyEngine
{
    private readonly Machine _machine;
    private readonly SimClock? _clock;
    private readonly CostModel _costs;
    private readonly DeviceMeters? _meters;

    /// <summary>
    /// Creates an engine for <paramref name="machine"/>'s memory. With a <paramref name="clock"/>,
    /// each batch charges the PCIe transfer time of its bytes (<see cref="CostModel.TransferNs"/>).
    /// </summary>
    public CopyEngine(Machine machine, SimClock? clock = null, CostModel? costs = null, DeviceMeters? meters = null)
    {
        _machine = machine;
        _clock = clock;
        _costs = costs ?? CostModel.Default;
        _meters = meters;
    }

    /// <summary>Pages copied since creation.</summary>
    public long PagesCopied { get; private set; }

    /// <summary>
    /// Copies every entry of <paramref name="copies"/>, in order. Consecutive entries whose
    /// sources and destinations are both physically contiguous are merged into one transfer, as a
    /// DMA engine chains descriptors: a 2 MiB run of base pages moves as one 2 MiB copy.
    /// </summary>
    public unsafe void Copy(ReadOnlySpan<PageCopy> copies)
    {
        long total = 0;
        for (int i = 0; i < copies.Length;)
        {
            var first = copies[i];
            ulong pages = 1UL << first.Order;
            int j = i + 1;
            while (j < copies.Length && copies[j].SrcPfn == first.SrcPfn + pages && copies[j].DstPfn == first.DstPfn + pages
                   && SameMemory(first.SrcPfn, copies[j].SrcPfn) && SameMemory(first.DstPfn, copies[j].DstPfn))
            {
                pages += 1UL << copies[j].Order;
                j++;
            }
            long bytes = (long)pages << Page.Shift;
            Buffer.MemoryCopy(_machine.DmaAddress(first.SrcPfn), _machine.DmaAddress(first.DstPfn), bytes, bytes);
            PagesCopied += (long)pages;
            total += bytes;
            i = j;
        }
        Charge(total);
    }

    /// <summary>
    /// Like <see cref="Copy"/>, but the transfer may fail (a DMA error, or an injected
    /// <see cref="FaultSite.CopyError"/>): false and nothing copied. Drivers that handle copy
    /// errors (migrate pages left unmigrated, then finalize) call this one.
    /// </summary>
    [Hmm.Dsl.CopyMayFail]
    public bool TryCopy(ReadOnlySpan<PageCopy> copies)
    {
        SchedulePoints.Reach(SchedulePointKind.DeviceStep, this);
        if (FaultInjection.Fails(FaultSite.CopyError)) return false;
        Copy(copies);
        return true;
    }

    /// <summary>Whether two pfns lie in the same contiguous memory (one 2 MiB block: RAM and device arenas are contiguous per block).</summary>
    private static bool SameMemory(ulong a, ulong b) => (a >> Page.PmdOrder) == (b >> Page.PmdOrder);

    private void Charge(long bytes)
    {
        if (bytes == 0) return;
        _meters?.AddBytesCopied(bytes);
        _clock?.Advance(_costs.TransferNs(bytes));
    }

    /// <summary>Zero-fills each page of <paramref name="pfns"/> (2^<paramref name="order"/> pages each): a hole migrated to the device.</summary>
    public unsafe void Clear(ReadOnlySpan<ulong> pfns, int order = 0)
    {
        foreach (ulong pfn in pfns)
            new Span<byte>(_machine.DmaAddress(pfn), Page.Size << order).Clear();
    }

    /// <summary>Reads the bytes of any page a device can reach (for device loads).</summary>
    public unsafe void Read(ulong pfn, int offset, Span<byte> destination)
        => new ReadOnlySpan<byte>(_machine.DmaAddress(pfn) + offset, destination.Length).CopyTo(destination);

    /// <summary>
    /// Moves <paramref name="length"/> bytes from one page a device can reach to another, both
    /// already translated (a DMA between two devices' translations, e.g. an RDMA NIC's loopback
    /// transfer from the requester's buffer into the responder's). Neither charges time nor counts:
    /// the caller accounts for its own link. The bytes must stay inside both pages.
    /// </summary>
    public unsafe void CopyBetween(ulong srcPfn, int srcOffset, ulong dstPfn, int dstOffset, int length)
    {
        if ((uint)srcOffset + (uint)length > Page.Size || (uint)dstOffset + (uint)length > Page.Size)
            throw new ArgumentOutOfRangeException(nameof(length), "a page-to-page DMA stays inside both pages");
        Buffer.MemoryCopy(_machine.DmaAddress(srcPfn) + srcOffset, _machine.DmaAddress(dstPfn) + dstOffset, length, length);
    }

    /// <summary>Writes bytes into any page a device can reach (for device stores).</summary>
    public unsafe void Write(ulong pfn, int offset, ReadOnlySpan<byte> source)
        => source.CopyTo(new Span<byte>(_machine.DmaAddress(pfn) + offset, source.Length));
}
