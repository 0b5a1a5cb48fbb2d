namespace Hmm.Runtime.Devices;

/// <summary>
/// The decode behind a device's <see cref="DeviceAperture.Peer"/> entries: a peer device's memory
/// reached at a bus address (a GPU mapping another GPU's VRAM through its BAR, as an AMD XGMI hive
/// or two PCIe GPUs sharing one pgmap owner do). The device MMU asks it which page backs a bus
/// address; an address nothing decodes is a fatal device fault (an unsupported request on the bus).
/// </summary>
public interface IPeerAperture
{
    /// <summary>The page behind bus address <paramref name="busAddress"/>; false when no peer decodes it.</summary>
    bool ResolveBus(ulong busAddress, out ulong pfn);
}
