using System.Collections.Generic;

namespace Hmm.Generators.Parsing;

/// <summary>
/// The public and internal member names the generator adds to a driver, per concern. A user
/// member with one of these names would make the generated code fail to compile, so the
/// generator skips such a driver and the DSL-shape analyzer reports HMM0012 (it links this file).
/// </summary>
internal static class GeneratedMembers
{
    public static readonly string[] Mirror =
    [
        "DriverName", "FaultTimeoutMs", "Device", "Process", "DeviceTable", "Instance", "IsAttached", "Notifier",
        "PgmapOwner", "PagesMirrored", "FaultRetries", "Invalidations", "OwnEventsSkipped", "PagesExclusive",
        "MappingExclusive", "Attach", "Detach", "Fault", "MakeExclusive",
    ];

    public static readonly string[] DeviceMemory =
    [
        "DeviceChunkBytes", "DeviceMaxChunks", "DeviceLargeFolios", "DeviceChunkCount", "DeviceChunk", "DevicePagesFree",
        "DeviceAllocations", "DeviceChunkOf", "TryAllocateDevicePage", "TryAllocateDevicePages", "RemoveDeviceMemory",
    ];

    public static readonly string[] Migration =
    [
        "PagesMigratedToDevice", "PagesMigratedToSystem", "LargeAllocationFallbacks", "MigrateToDevice", "MigrateToSystem",
    ];

    /// <summary>A device-level memory class's own members, besides <see cref="DeviceMemory"/>.</summary>
    public static readonly string[] MemoryProvider = ["Device", "PgmapOwner", "AttachDeviceMemory", "DevicePageUser", "SetDevicePageUser"];

    public static readonly string[] FaultBuffer = ["FaultBatchSize", "Cancelled", "RangesServiced", "ServiceFaults", "RunToCompletion"];

    /// <summary>Added by <c>HmmDriver(GenerateSnapshot = true)</c>.</summary>
    public static readonly string[] Snapshot = ["Snapshot"];

    /// <summary>Added by <c>DeviceMemory(PageCounters = true)</c> (to the class owning the memory).</summary>
    public static readonly string[] PageCounters = ["DevicePagesAllocated", "DevicePagesFreed", "DeviceFreeListLengths"];

    /// <summary>Added by <c>DeviceMemory(Configurable = true)</c> (to the class owning the memory).</summary>
    public static readonly string[] Configurable = ["DeviceKind", "DeviceChunkSize", "DeviceChunkLimit", "ConfigureDeviceMemory"];

    public static readonly string[] P2pExporter = ["P2pExporter"];

    public static readonly string[] P2pImporter = ["ImportPeer"];

    /// <summary>Whether a user member name collides with generated code: a listed name, or the generator's private prefixes.</summary>
    public static bool IsReserved(string name, bool devmem, bool migration, bool faultBuffer, bool exporter, bool importer)
    {
        if (name.StartsWith("__hmm", System.StringComparison.OrdinalIgnoreCase) || name.StartsWith("t_hmm", System.StringComparison.Ordinal)) return true;
        return Contains(Mirror, name)
            || (devmem && Contains(DeviceMemory, name))
            || (migration && Contains(Migration, name))
            || (faultBuffer && Contains(FaultBuffer, name))
            || (exporter && Contains(P2pExporter, name))
            || (importer && Contains(P2pImporter, name));
    }

    /// <summary>Whether a user member name collides with a member only an option generates (<see cref="Snapshot"/>, <see cref="PageCounters"/>, <see cref="Configurable"/>).</summary>
    public static bool IsReservedByOptions(string name, bool snapshot, bool pageCounters, bool configurable = false)
        => (snapshot && Contains(Snapshot, name)) || (pageCounters && Contains(PageCounters, name)) || (configurable && Contains(Configurable, name));

    /// <summary>Whether a member name of a device-level memory class collides with its generated members.</summary>
    public static bool IsReservedForMemory(string name)
        => name.StartsWith("__hmm", System.StringComparison.OrdinalIgnoreCase) || name.StartsWith("t_hmm", System.StringComparison.Ordinal)
           || Contains(DeviceMemory, name) || Contains(MemoryProvider, name);

    private static bool Contains(IReadOnlyList<string> names, string name)
    {
        for (int i = 0; i < names.Count; i++)
            if (names[i] == name) return true;
        return false;
    }
}
