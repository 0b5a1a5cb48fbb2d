namespace Hmm.Runtime.DeviceMemory;

/// <summary>Simulates <c>enum memory_type</c> for the ZONE_DEVICE kinds HMM uses (kernel values).</summary>
public enum DevicePageKind
{
    /// <summary>MEMORY_DEVICE_PRIVATE: the CPU cannot address it; CPU entries are non-present device-private entries and a CPU touch calls migrate_to_ram.</summary>
    Private = 1,
    /// <summary>MEMORY_DEVICE_COHERENT: CPU-addressable, cache-coherent device memory mapped by ordinary PTEs.</summary>
    Coherent = 2,
    /// <summary>MEMORY_DEVICE_PCI_P2PDMA: a device's BAR memory, reachable by peers.</summary>
    P2PDma = 5,
}

/// <summary>The result of <see cref="IDevPagemapOps.MigrateToRam"/> (the VM_FAULT_* codes it may return).</summary>
public enum VmFaultResult
{
    /// <summary>0: the page was migrated back (or the fault raced); the access is retried.</summary>
    Ok = 0,
    /// <summary>VM_FAULT_SIGBUS: the page could not be migrated (the process gets SIGBUS).</summary>
    SigBus,
    /// <summary>VM_FAULT_OOM: no system memory to migrate into.</summary>
    Oom,
}
