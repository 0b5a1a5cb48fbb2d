using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.Nouveau;

/// <summary>
/// What the DSL generator writes for a GPU driver declaration ([HmmDriver] + [DeviceMemory] +
/// [FaultBuffer]), as the <see cref="GpuSvm"/> logic uses it. Every member is generated: a
/// declaration lists this interface and the generated public members implement it, so the SVM
/// logic reaches the mirror, the migration sequences and the fault service without any of them
/// being written by hand (issue 13, acceptance 3).
/// </summary>
public interface IGeneratedGpuDriver : IGpuFaultService
{
    /// <summary>The device the driver is attached to.</summary>
    SimDevice Device { get; }

    /// <summary>The mirrored process.</summary>
    Process Process { get; }

    /// <summary>The device page table of the mirror.</summary>
    DevicePageTable DeviceTable { get; }

    /// <summary>The device instance (channel instance pointer) of the mirror.</summary>
    int Instance { get; }

    /// <summary>Whether the driver is attached.</summary>
    bool IsAttached { get; }

    /// <summary>The pgmap owner cookie (dev_private_owner) of the driver's VRAM.</summary>
    object PgmapOwner { get; }

    /// <summary>Attaches to a device and mirrors a process.</summary>
    Errno Attach(SimDevice device, Process process);

    /// <summary>Stops mirroring.</summary>
    void Detach();

    /// <summary>The generated mirror fault (read_begin / hmm_range_fault / update lock / read_retry).</summary>
    Errno Fault(ulong start, ulong end, bool write);

    /// <summary>The generated migrate_vma sequence system → VRAM.</summary>
    Errno MigrateToDevice(ulong start, ulong end, out long moved);

    /// <summary>The generated migrate_vma sequence VRAM → system.</summary>
    Errno MigrateToSystem(ulong start, ulong end, out long moved);

    /// <summary>The VRAM chunk holding <paramref name="pfn"/>, or null when it is not this driver's.</summary>
    DevPagemap? DeviceChunkOf(ulong pfn);

    /// <summary>VRAM chunks hot-added so far.</summary>
    int DeviceChunkCount { get; }

    /// <summary>VRAM pages on the free lists.</summary>
    long DevicePagesFree { get; }

    /// <summary>Evicts every VRAM page to system memory and removes the chunks (driver unload).</summary>
    Errno RemoveDeviceMemory();

    /// <summary>Pages migrated to VRAM by the generated sequences.</summary>
    long PagesMigratedToDevice { get; }

    /// <summary>Pages migrated back to system memory (migrate_to_ram included).</summary>
    long PagesMigratedToSystem { get; }

    /// <summary>Fault entries cancelled.</summary>
    long Cancelled { get; }

    /// <summary>Fault snapshots retried after an -EBUSY or a collision with an invalidation.</summary>
    long FaultRetries { get; }
}
