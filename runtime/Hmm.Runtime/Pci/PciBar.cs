namespace Hmm.Runtime.Pci;

/// <summary>
/// One base address register of a function (<c>pci_resource_start/len/flags</c>). The CPU
/// physical window is assigned by the topology; the PCI bus address is CPU phys +
/// <see cref="BusOffset"/> (the kernel's per-BAR <c>bus_offset</c> = bus address − resource start).
/// </summary>
public sealed class PciBar
{
    internal PciBar(PciFunction function, int index, PciBarKind kind, ulong cpuPhysStart, ulong length, long busOffset)
    {
        Function = function;
        Index = index;
        Kind = kind;
        CpuPhysStart = cpuPhysStart;
        Length = length;
        BusOffset = busOffset;
    }

    /// <summary>The function the BAR belongs to.</summary>
    public PciFunction Function { get; }

    /// <summary>BAR number (0–5).</summary>
    public int Index { get; }

    /// <summary>Memory or I/O space.</summary>
    public PciBarKind Kind { get; }

    /// <summary>pci_resource_start: CPU physical address of the window.</summary>
    public ulong CpuPhysStart { get; }

    /// <summary>pci_resource_len.</summary>
    public ulong Length { get; }

    /// <summary>pci_bus_address − pci_resource_start.</summary>
    public long BusOffset { get; }

    /// <summary>pci_bus_address: the address peers use on the PCI bus.</summary>
    public ulong BusStart => unchecked(CpuPhysStart + (ulong)BusOffset);

    /// <inheritdoc/>
    public override string ToString() => $"BAR{Index} {Kind} [0x{CpuPhysStart:x}, +0x{Length:x}) bus 0x{BusStart:x}";
}
