using Hmm.Dsl;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Memory;

/// <summary>
/// The CPU's access to a page by pfn, as drivers use it on pages they own (a fake device's backing
/// pages, a destination page in migrate_to_ram): kmap_local_page and copy_highpage. Only
/// CPU-addressable memory can be reached this way; a device-private pfn is a
/// <see cref="KernelBugException"/> (PAGE-R02) — the analyzers flag the driver code that would
/// get there (HMM1042). Device memory the CPU cannot see is reached with the device's copy engine.
/// </summary>
public static unsafe class HighMem
{
    /// <summary>kmap_local_page: the bytes of 2^<paramref name="order"/> pages from <paramref name="pfn"/>, through the CPU's mapping.</summary>
    public static Span<byte> Map(Machine machine, [CpuAccess] ulong pfn, int order = 0)
    {
        ArgumentNullException.ThrowIfNull(machine);
        if (order != 0 && order != Page.PmdOrder) throw new ArgumentOutOfRangeException(nameof(order));
        return new Span<byte>(machine.PageAddress(pfn), Page.Size << order);
    }

    /// <summary>copy_highpage for 2^<paramref name="order"/> pages: a CPU copy between two CPU-addressable pages.</summary>
    public static void CopyPage(Machine machine, [CpuAccess] ulong dstPfn, [CpuAccess] ulong srcPfn, int order = 0)
    {
        ArgumentNullException.ThrowIfNull(machine);
        if (order != 0 && order != Page.PmdOrder) throw new ArgumentOutOfRangeException(nameof(order));
        machine.CopyPages(dstPfn, srcPfn, order);
    }
}
