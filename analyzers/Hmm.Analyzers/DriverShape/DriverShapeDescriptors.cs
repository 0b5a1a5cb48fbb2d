using Microsoft.CodeAnalysis;

namespace Hmm.Analyzers.DriverShape;

/// <summary>
/// The HMM0xxx rules: the shape of a driver DSL declaration. Each is what makes the generator
/// skip (part of) a driver, so the user gets one clear diagnostic instead of missing members.
/// Ids are constants for the code fixes and tests; help links point at docs/diagnostics.
/// </summary>
internal static class DriverShapeDescriptors
{
    public const string Category = "Hmm.DriverShape";

    public const string NotPartialId = "HMM0001";
    public const string NestedId = "HMM0002";
    public const string GenericId = "HMM0003";
    public const string WrongSignatureId = "HMM0004";
    public const string DuplicateCallbackId = "HMM0005";
    public const string MissingCallbackId = "HMM0006";
    public const string UpdateLockId = "HMM0007";
    public const string OwnerId = "HMM0008";
    public const string UnusedCallbackId = "HMM0009";
    public const string OutsideDriverId = "HMM0010";
    public const string BadArgumentId = "HMM0011";
    public const string ReservedNameId = "HMM0012";
    public const string MemoryId = "HMM0013";
    public const string TwoMemoriesId = "HMM0014";
    public const string NoMigrateToRamId = "HMM0015";

    private static DiagnosticDescriptor Rule(string id, string title, string message, DiagnosticSeverity severity = DiagnosticSeverity.Error)
        => new(id, title, message, Category, severity, isEnabledByDefault: true, description: null,
               helpLinkUri: "docs/diagnostics/" + id + ".md");

    /// <summary>HMM0001: "Driver class '{0}' must be partial: the generator adds its plumbing to it".</summary>
    public static readonly DiagnosticDescriptor NotPartial = Rule(NotPartialId, "A driver class must be partial",
        "Driver class '{0}' must be partial: the generator adds its plumbing to it");

    /// <summary>HMM0002: "Driver class '{0}' must not be nested in '{1}'".</summary>
    public static readonly DiagnosticDescriptor Nested = Rule(NestedId, "A driver class must be top-level",
        "Driver class '{0}' must not be nested in '{1}'");

    /// <summary>HMM0003: "Driver class '{0}' must not be generic".</summary>
    public static readonly DiagnosticDescriptor Generic = Rule(GenericId, "A driver class must not be generic",
        "Driver class '{0}' must not be generic");

    /// <summary>HMM0004: "'{0}' is not a valid [{1}] callback: expected an instance method '{2}'".</summary>
    public static readonly DiagnosticDescriptor WrongSignature = Rule(WrongSignatureId, "A callback has the wrong signature",
        "'{0}' is not a valid [{1}] callback: expected an instance method '{2}'");

    /// <summary>HMM0005: "[{0}] is already declared on '{1}'; a driver has at most one".</summary>
    public static readonly DiagnosticDescriptor DuplicateCallback = Rule(DuplicateCallbackId, "A callback is declared twice",
        "[{0}] is already declared on '{1}'; a driver has at most one");

    /// <summary>HMM0006: "[{0}] on '{1}' requires a [{2}] callback ('{3}')".</summary>
    public static readonly DiagnosticDescriptor MissingCallback = Rule(MissingCallbackId, "A required callback is missing",
        "[{0}] on '{1}' requires a [{2}] callback ('{3}')");

    /// <summary>HMM0007: "UpdateLock '{0}' names no instance KernelMutex field or property of '{1}'".</summary>
    public static readonly DiagnosticDescriptor UpdateLock = Rule(UpdateLockId, "UpdateLock must name a KernelMutex",
        "UpdateLock '{0}' names no instance KernelMutex field or property of '{1}'");

    /// <summary>HMM0008: "Owner '{0}' names no instance field or property of a reference type in '{1}'".</summary>
    public static readonly DiagnosticDescriptor Owner = Rule(OwnerId, "Owner must name a reference-typed member",
        "Owner '{0}' names no instance field or property of a reference type in '{1}'");

    /// <summary>HMM0009: "[{0}] on '{1}' is never called: the driver has no [{2}]" (warning).</summary>
    public static readonly DiagnosticDescriptor UnusedCallback = Rule(UnusedCallbackId, "A callback is never called",
        "[{0}] on '{1}' is never called: the driver has no [{2}]", DiagnosticSeverity.Warning);

    /// <summary>HMM0010: "[{0}] on '{1}' has no effect: '{2}' is not an [HmmDriver] class".</summary>
    public static readonly DiagnosticDescriptor OutsideDriver = Rule(OutsideDriverId, "A callback outside a driver",
        "[{0}] on '{1}' has no effect: '{2}' is not an [HmmDriver] class", DiagnosticSeverity.Warning);

    /// <summary>HMM0011: "{0}".</summary>
    public static readonly DiagnosticDescriptor BadArgument = Rule(BadArgumentId, "A DSL attribute argument is out of range",
        "{0}");

    /// <summary>HMM0012: "'{0}' clashes with the generated member '{0}' of driver '{1}'; rename it".</summary>
    public static readonly DiagnosticDescriptor ReservedName = Rule(ReservedNameId, "A member clashes with a generated one",
        "'{0}' clashes with the generated member '{0}' of driver '{1}'; rename it");

    /// <summary>HMM0013: "Memory '{0}' names no instance field or property of '{1}' whose type is a device-level [DeviceMemory] class".</summary>
    public static readonly DiagnosticDescriptor Memory = Rule(MemoryId, "Memory must name a device-level memory member",
        "Memory '{0}' names no instance field or property of '{1}' whose type is a device-level [DeviceMemory] class (a class with [DeviceMemory] and no [HmmDriver])");

    /// <summary>HMM0014: "Driver '{0}' declares its own [DeviceMemory] and shares '{1}' (Memory): choose one".</summary>
    public static readonly DiagnosticDescriptor TwoMemories = Rule(TwoMemoriesId, "A driver has its own and shared device memory",
        "Driver '{0}' declares its own [DeviceMemory] and shares '{1}' (Memory): migration could use only one; choose one");

    /// <summary>HMM0015: "[BeforeMigrateToRam] on '{0}' never runs: the device memory of '{1}' is {2}, which the CPU reaches without migrate_to_ram" (warning).</summary>
    public static readonly DiagnosticDescriptor NoMigrateToRam = Rule(NoMigrateToRamId, "A migrate_to_ram hook on memory without migrate_to_ram",
        "[BeforeMigrateToRam] on '{0}' never runs: the device memory of '{1}' is {2}, which the CPU reaches without migrate_to_ram (only DevicePageKind.Private pages fault back)",
        DiagnosticSeverity.Warning);
}
