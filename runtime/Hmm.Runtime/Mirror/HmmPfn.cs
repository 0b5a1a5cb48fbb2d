using System.Runtime.CompilerServices;

namespace Hmm.Runtime.Mirror;

/// <summary>
/// Simulates the <c>HMM_PFN_*</c> encoding of an <c>hmm_pfns[]</c> word (include/linux/hmm.h,
/// newest layout ≥ 6.15; reference/kernel-hmm.md A.5). Bits 63..58 are flags, bits 57..53 the
/// map order, bits 52..0 the pfn. On input the same word carries request bits
/// (<see cref="ReqFault"/>, <see cref="ReqWrite"/>) and the caller's sticky bits
/// (<see cref="InOutFlags"/>), which <see cref="HmmRange.Fault"/> preserves.
/// </summary>
public static class HmmPfn
{
    /// <summary>HMM_PFN_VALID (out): the pfn field is valid and the page at least readable.</summary>
    public const ulong Valid = 1UL << 63;

    /// <summary>HMM_PFN_WRITE (out): the CPU may write the page (only together with <see cref="Valid"/>).</summary>
    public const ulong Write = 1UL << 62;

    /// <summary>HMM_PFN_ERROR (out): access is impossible (no VMA, unreadable/IO/PFNMAP VMA, special page, bad entry).</summary>
    public const ulong Error = 1UL << 61;

    /// <summary>HMM_PFN_DMA_MAPPED (sticky in→out): the caller's "already DMA mapped" tag.</summary>
    public const ulong DmaMapped = 1UL << 60;

    /// <summary>HMM_PFN_P2PDMA (sticky): a P2P page mapped through the host bridge.</summary>
    public const ulong P2PDma = 1UL << 59;

    /// <summary>HMM_PFN_P2PDMA_BUS (sticky): a P2P page mapped by bus address.</summary>
    public const ulong P2PDmaBus = 1UL << 58;

    /// <summary>HMM_PFN_ORDER_SHIFT: first bit of the 5-bit map-order field.</summary>
    public const int OrderShift = 53;

    /// <summary>The 5-bit map-order field, in place (bits 53..57).</summary>
    public const ulong OrderMask = 0x1FUL << OrderShift;

    /// <summary>HMM_PFN_FLAGS: every bit at or above <see cref="OrderShift"/>.</summary>
    public const ulong Flags = ~0UL << OrderShift;

    /// <summary>HMM_PFN_INOUT_FLAGS: the sticky bits preserved from input to output.</summary>
    public const ulong InOutFlags = DmaMapped | P2PDma | P2PDmaBus;

    /// <summary>HMM_PFN_REQ_FAULT (in, alias of <see cref="Valid"/>): the output must become valid or the call fails.</summary>
    public const ulong ReqFault = Valid;

    /// <summary>HMM_PFN_REQ_WRITE (in, alias of <see cref="Write"/>): the output must become writable; only meaningful with <see cref="ReqFault"/> (HMM-R15).</summary>
    public const ulong ReqWrite = Write;

    /// <summary>~HMM_PFN_FLAGS: the pfn field (bits 0..52).</summary>
    public const ulong PfnMask = ~Flags;

    /// <summary>HMM_RANGE_DEFAULT_TIMEOUT: the caller-side bound (ms) of an -EBUSY retry loop.</summary>
    public const int DefaultTimeoutMs = 1000;

    /// <summary>The pfn of an output word (hmm_pfn_to_page / hmm_pfn_to_phys); test <see cref="Valid"/> first (HMM-R14).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ToPfn(ulong word) => word & PfnMask;

    /// <summary>hmm_pfn_to_map_order: the CPU mapping covers 2^order pages at an order-aligned address.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ToMapOrder(ulong word) => (int)((word >> OrderShift) & 0x1F);

    /// <summary>Whether <see cref="Valid"/> is set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsValid(ulong word) => (word & Valid) != 0;

    /// <summary>A valid output word for <paramref name="pfn"/> (as hmm_range_fault produces it, without sticky bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Make(ulong pfn, bool write, int order = 0)
        => Valid | (write ? Write : 0) | ((ulong)(order & 0x1F) << OrderShift) | (pfn & PfnMask);
}
