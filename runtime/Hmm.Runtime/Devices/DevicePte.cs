using System.Runtime.CompilerServices;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Devices;

/// <summary>
/// The aperture a device PTE targets (nouveau's NVIF_VMM_PFNMAP_V0_VRAM/HOST apertures,
/// drivers.md A.3 step 8; mlx5 MTTs hold DMA/bus addresses, B.7).
/// </summary>
public enum DeviceAperture : byte
{
    /// <summary>System memory: the frame is a host pfn (or a DMA page number when an IOMMU translates).</summary>
    System = 0,
    /// <summary>The device's own memory: the frame is a page index into its VRAM.</summary>
    Vram = 1,
    /// <summary>Another device's BAR reached over PCIe: the frame is a bus page number (bus address &gt;&gt; 12).</summary>
    Peer = 2,
}

/// <summary>Outcome of a device MMU walk (<see cref="DevicePageTable.Translate(ulong, bool, bool, out DeviceTranslation)"/>).</summary>
public enum DeviceMmuResult : byte
{
    /// <summary>Mapped with the permission the access needs.</summary>
    Hit = 0,
    /// <summary>No valid entry: a replayable (non-fatal) translation fault.</summary>
    Miss = 1,
    /// <summary>Mapped, but without the write or atomic permission the access needs.</summary>
    PermissionFault = 2,
    /// <summary>The IOMMU refused the bus address: a fatal, non-replayable device error (recorded by the IOMMU).</summary>
    IommuFault = 3,
}

/// <summary>What the device MMU resolved for one virtual page.</summary>
/// <param name="Aperture">Where the page lives.</param>
/// <param name="Frame">The 4 KiB page the address falls in, in <paramref name="Aperture"/>'s numbering (inside a 2 MiB leaf: head frame + index).</param>
/// <param name="Writable">The write bit.</param>
/// <param name="Atomic">The atomic bit (device-exclusive / device-local, drivers.md A.6).</param>
/// <param name="Shift">Size of the leaf that mapped it: 12 (4 KiB) or 21 (2 MiB).</param>
public readonly record struct DeviceTranslation(DeviceAperture Aperture, ulong Frame, bool Writable, bool Atomic, int Shift)
{
    /// <summary>Byte address of <paramref name="va"/> in the aperture (frame &lt;&lt; 12 | page offset).</summary>
    public ulong AddressOf(ulong va) => (Frame << Page.Shift) | (va & Page.OffsetMask);
}

/// <summary>
/// One 32-bit device PTE (leaf or directory link). Compact on purpose: 4 bytes per 4 KiB leaf
/// keeps a fully mirrored GiB at ~1 MiB (issue 4 target ≤ 2 MiB).
/// Layout: bit 0 VALID, bit 1 WRITE, bit 2 ATOMIC, bits 3..4 aperture (0 system, 1 VRAM,
/// 2 peer, 3 = link to a lower-level table), bits 5..31 frame (27 bits: 512 GiB per aperture)
/// or table id for links.
/// </summary>
public readonly record struct DevicePte(uint Raw)
{
    internal const uint ValidBit = 1;
    internal const uint WriteBit = 2;
    internal const uint AtomicBit = 4;
    internal const int ApertureShift = 3;
    internal const uint ApertureMask = 3u << ApertureShift;
    internal const uint LinkTag = 3u << ApertureShift;
    internal const int FrameShift = 5;

    /// <summary>Largest frame (or table id) an entry can hold: 2^27 − 1.</summary>
    public const ulong MaxFrame = (1UL << (32 - FrameShift)) - 1;

    /// <summary>Whether the entry is valid.</summary>
    public bool Valid => (Raw & ValidBit) != 0;

    /// <summary>Whether the device may write.</summary>
    public bool Writable => (Raw & WriteBit) != 0;

    /// <summary>Whether the device may perform atomics.</summary>
    public bool Atomic => (Raw & AtomicBit) != 0;

    /// <summary>The aperture (meaningless for links).</summary>
    public DeviceAperture Aperture => (DeviceAperture)((Raw & ApertureMask) >> ApertureShift);

    /// <summary>The frame (leaf) or table id (link).</summary>
    public ulong Frame => Raw >> FrameShift;

    internal bool IsLink => (Raw & (ApertureMask | ValidBit)) == (LinkTag | ValidBit);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint Leaf(DeviceAperture aperture, ulong frame, bool write, bool atomic)
        => ValidBit | (write ? WriteBit : 0) | (write && atomic ? AtomicBit : 0)
           | ((uint)aperture << ApertureShift) | ((uint)frame << FrameShift);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint Link(int tableId) => ValidBit | LinkTag | ((uint)tableId << FrameShift);
}

/// <summary>
/// pfn → device target translation used by <see cref="DevicePageTable.Install{TMap}"/> (nouveau's
/// nouveau_hmm_convert_pfn, drivers.md A.3 step 8). Implement on a struct: the call is inlined,
/// no boxing, no closure.
/// </summary>
public interface IDeviceTargetMap
{
    /// <summary>Maps a host <paramref name="pfn"/> (from an hmm_pfn word) to an aperture and frame.</summary>
    void Map(ulong pfn, out DeviceAperture aperture, out ulong frame);
}

/// <summary>Every pfn goes to one aperture, frame = pfn (system RAM without IOMMU; or already-DMA-mapped page numbers).</summary>
public readonly struct UniformTargets(DeviceAperture aperture) : IDeviceTargetMap
{
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Map(ulong pfn, out DeviceAperture a, out ulong frame)
    {
        a = aperture;
        frame = pfn;
    }
}

/// <summary>
/// nouveau's conversion: a pfn inside this device's private memory [<paramref name="firstPfn"/>,
/// +<paramref name="pages"/>) → VRAM aperture at its page offset; anything else → system aperture.
/// </summary>
public readonly struct DevicePrivateTargets(ulong firstPfn, ulong pages) : IDeviceTargetMap
{
    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Map(ulong pfn, out DeviceAperture aperture, out ulong frame)
    {
        ulong off = pfn - firstPfn;
        if (off < pages)
        {
            aperture = DeviceAperture.Vram;
            frame = off;
        }
        else
        {
            aperture = DeviceAperture.System;
            frame = pfn;
        }
    }
}
