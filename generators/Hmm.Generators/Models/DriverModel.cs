using Hmm.Generators.Helpers;

namespace Hmm.Generators.Models;

/// <summary>
/// Everything the emitter needs about one [HmmDriver] class, as plain values: no symbols,
/// syntax, locations or compilations, so an edit that does not change the driver's shape
/// produces an equal model and the emit step stays cached.
/// </summary>
/// <param name="Namespace">The containing namespace ("" for the global namespace).</param>
/// <param name="ClassName">The class name (non-nested, non-generic).</param>
/// <param name="MetadataName">The fully qualified metadata name, the base of the hint names.</param>
/// <param name="DriverName">HmmDriver(name).</param>
/// <param name="UpdateLock">The KernelMutex member named by UpdateLock, or null for a generated one.</param>
/// <param name="Sync">The MirrorSync value (0 sequence retry, 1 range lock, 2 range monitor).</param>
/// <param name="Owner">The member holding the pgmap owner cookie, or null for the driver itself.</param>
/// <param name="FilterOwnMigrations">Skip own MIGRATE/EXCLUSIVE events (HMM-R19/R20).</param>
/// <param name="FaultTimeoutMs">The -EBUSY retry bound.</param>
/// <param name="DeviceMemory">[DeviceMemory], or null.</param>
/// <param name="FaultBuffer">[FaultBuffer], or null.</param>
/// <param name="P2pExporter">[P2pExporter] present.</param>
/// <param name="P2pImporter">[P2pImporter] present.</param>
/// <param name="Callbacks">The well-formed callbacks, ordered by kind (one per kind).</param>
/// <param name="Memory">HmmDriver(Memory): the member holding the shared device-level memory (then <paramref name="DeviceMemory"/> is that class's), or null.</param>
/// <param name="MemoryType">The metadata name of that memory class: the driver's <paramref name="DeviceMemory"/> is resolved from its model when emitting (another file's edit must reach this driver).</param>
/// <param name="MemoryProvider">True for a device-level class carrying [DeviceMemory] without [HmmDriver]: only its memory is generated.</param>
/// <param name="FaultBatchPages">HmmDriver.FaultBatchPages: pages per hmm_range_fault piece of <c>Fault</c>/<c>Snapshot</c> (1..512).</param>
/// <param name="GenerateSnapshot">HmmDriver.GenerateSnapshot: also emit the non-faulting, non-programming <c>Snapshot</c>.</param>
/// <param name="MigrationWalk">HmmDriver.MigrationWalk: 0 the generated 2 MiB-aligned walk, 1 test_hmm's ioctl walk.</param>
/// <param name="RangedNotifier">HmmDriver.RangedNotifier: also emit <c>Attach(device, process, start, end)</c>, whose interval notifier covers only [start, end).</param>
internal sealed record DriverModel(
    string Namespace,
    string ClassName,
    string MetadataName,
    string DriverName,
    string? UpdateLock,
    int Sync,
    string? Owner,
    bool FilterOwnMigrations,
    int FaultTimeoutMs,
    DeviceMemoryModel? DeviceMemory,
    FaultBufferModel? FaultBuffer,
    bool P2pExporter,
    bool P2pImporter,
    EquatableArray<CallbackModel> Callbacks,
    string? Memory = null,
    bool MemoryProvider = false,
    string? MemoryType = null,
    bool RangedNotifier = false,
    int FaultBatchPages = 512,
    bool GenerateSnapshot = false,
    int MigrationWalk = 0)
{
    /// <summary>The method name of the <paramref name="kind"/> callback, or null when the driver has none.</summary>
    public string? Callback(CallbackKind kind)
    {
        foreach (var c in Callbacks)
            if (c.Kind == kind) return c.MethodName;
        return null;
    }

    /// <summary>Whether the <c>[OnMirrorFault]</c> callback returns an errno (a non-Ok one ends the fault with it).</summary>
    public bool MirrorFaultReturnsErrno
    {
        get
        {
            foreach (var c in Callbacks)
                if (c.Kind == CallbackKind.OnMirrorFault) return c.ReturnsErrno;
            return false;
        }
    }

    /// <summary>Whether migration (to device, to system, migrate_to_ram) is generated: private or coherent memory with a [CopyPages] callback.</summary>
    public bool HasMigration => !MemoryProvider && DeviceMemory is { Kind: 1 or 2 } && Callback(CallbackKind.CopyPages) != null;

    /// <summary>
    /// Whether the hotplug allocator is generated in this class: a driver's own [DeviceMemory] with its
    /// required [CopyPages], or a device-level memory class (whose users do the copying).
    /// </summary>
    public bool HasDeviceMemory => DeviceMemory != null && Memory == null && (MemoryProvider || Callback(CallbackKind.CopyPages) != null);

    /// <summary>The expression of the object whose device memory the driver allocates from: itself, or the shared device-level memory.</summary>
    public string MemoryExpr => Memory != null ? "this." + Memory : "this";
}
