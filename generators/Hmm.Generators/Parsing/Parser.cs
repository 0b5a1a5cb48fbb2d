using System.Collections.Immutable;
using Hmm.Generators.Helpers;
using Hmm.Generators.Models;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Hmm.Generators;

/// <summary>
/// Symbol → <see cref="DriverModel"/>. Returns null for a declaration the generator cannot
/// implement (not partial, nested, generic, a bad attribute argument, an UpdateLock or Owner
/// naming nothing usable); a callback of the wrong shape, or a kind declared twice, is left
/// out as if absent. Every such case is an HMM0xxx diagnostic of the DSL-shape analyzer.
/// </summary>
internal static class Parser
{
    public static DriverModel? Parse(GeneratorAttributeSyntaxContext context, CancellationToken ct)
    {
        if (context.TargetSymbol is not INamedTypeSymbol type || context.TargetNode is not ClassDeclarationSyntax syntax) return null;
        if (!IsImplementable(type, syntax)) return null;
        if (context.Attributes.Length != 1) return null;
        var driver = context.Attributes[0];
        if (driver.ConstructorArguments.Length != 1 || driver.ConstructorArguments[0].Value is not string name || name.Length == 0) return null;

        string? updateLock = null, owner = null, memory = null;
        int sync = 0, timeout = 1000, batchPages = 512, walk = 0;
        bool filter = true, ranged = false, snapshot = false;
        foreach (var arg in driver.NamedArguments)
        {
            switch (arg.Key)
            {
                case "UpdateLock": updateLock = arg.Value.Value as string; break;
                case "Sync": sync = arg.Value.Value is int s ? s : -1; break;
                case "Owner": owner = arg.Value.Value as string; break;
                case "FilterOwnMigrations": filter = arg.Value.Value is true; break;
                case "FaultTimeoutMs": timeout = arg.Value.Value is int t ? t : -1; break;
                case "Memory": memory = arg.Value.Value as string; break;
                case "RangedNotifier": ranged = arg.Value.Value is true; break;
                case "FaultBatchPages": batchPages = arg.Value.Value is int p ? p : -1; break;
                case "GenerateSnapshot": snapshot = arg.Value.Value is true; break;
                case "MigrationWalk": walk = arg.Value.Value is int w ? w : -1; break;
            }
        }
        if (sync is < 0 or > 2 || walk is < 0 or > 1 || timeout <= 0 || !Parsing.DeclarationRules.IsValidFaultBatch(batchPages)) return null;
        if (updateLock != null && !Parsing.DeclarationRules.IsKernelMutexMember(type, updateLock)) return null;
        if (owner != null && !Parsing.DeclarationRules.IsOwnerMember(type, owner)) return null;
        INamedTypeSymbol? memoryType = null;
        if (memory != null && !Parsing.DeclarationRules.IsMemoryMember(type, memory, out memoryType)) return null;
        ct.ThrowIfCancellationRequested();

        DeviceMemoryModel? devmem = null;
        FaultBufferModel? faultBuffer = null;
        bool exporter = false, importer = false;
        foreach (var attribute in type.GetAttributes())
        {
            string? fullName = attribute.AttributeClass?.ToDisplayString();
            switch (fullName)
            {
                case KnownNames.DeviceMemoryAttribute:
                    // Own memory and shared memory at once: which one would migration use?
                    if (memory != null) return null;
                    devmem = ParseDeviceMemory(attribute);
                    if (devmem == null) return null;
                    break;
                case KnownNames.FaultBufferAttribute:
                    faultBuffer = ParseFaultBuffer(attribute);
                    if (faultBuffer == null) return null;
                    break;
                case KnownNames.P2pExporterAttribute: exporter = true; break;
                case KnownNames.P2pImporterAttribute: importer = true; break;
            }
        }

        if (memoryType != null)
        {
            foreach (var attribute in memoryType.GetAttributes())
                if (attribute.AttributeClass?.ToDisplayString() == KnownNames.DeviceMemoryAttribute) devmem = ParseDeviceMemory(attribute);
            if (devmem == null) return null;
        }

        var callbacks = ParseCallbacks(type, ct);
        bool hasCopy = false;
        foreach (var c in callbacks) hasCopy |= c.Kind == CallbackKind.CopyPages;
        bool hasDevmem = devmem != null && hasCopy;
        foreach (var member in type.GetMembers())
            if (!member.IsImplicitlyDeclared && Parsing.GeneratedMembers.IsReserved(member.Name, hasDevmem && memory == null, hasDevmem && devmem!.Kind is 1 or 2, faultBuffer != null, exporter, importer)
                || Parsing.GeneratedMembers.IsReservedByOptions(member.Name, snapshot, hasDevmem && memory == null && devmem!.PageCounters, hasDevmem && memory == null && devmem!.Configurable))
                return null;
        return new DriverModel(
            type.ContainingNamespace.IsGlobalNamespace ? "" : type.ContainingNamespace.ToDisplayString(),
            type.Name,
            MetadataName(type),
            name,
            updateLock,
            sync,
            owner,
            filter,
            timeout,
            devmem,
            faultBuffer,
            exporter,
            importer,
            callbacks,
            memory,
            MemoryType: memoryType != null ? MetadataName(memoryType) : null,
            RangedNotifier: ranged,
            FaultBatchPages: batchPages,
            GenerateSnapshot: snapshot,
            MigrationWalk: walk);
    }

    /// <summary>
    /// Gives a driver that shares a device-level memory that memory's current model: the FAWMN
    /// transform of the driver does not re-run when only the memory class's file changes, so the
    /// memory's kind and options are taken from the memory pipeline here. Null when the memory class
    /// is no longer one the generator implements (the driver is then skipped, as the analyzer reports).
    /// </summary>
    public static DriverModel? ResolveMemory(DriverModel driver, ImmutableArray<DriverModel> memories)
    {
        if (driver.MemoryType == null) return driver;
        foreach (var memory in memories)
            if (memory.MetadataName == driver.MemoryType)
                return Equals(memory.DeviceMemory, driver.DeviceMemory) ? driver : driver with { DeviceMemory = memory.DeviceMemory };
        return null;
    }

    /// <summary>
    /// A device-level memory class ([DeviceMemory] without [HmmDriver]) → a model of which only the
    /// device memory is emitted; null for a driver's own [DeviceMemory] (the driver pipeline has it)
    /// or a declaration the generator cannot implement.
    /// </summary>
    public static DriverModel? ParseMemoryProvider(GeneratorAttributeSyntaxContext context, CancellationToken ct)
    {
        if (context.TargetSymbol is not INamedTypeSymbol type || context.TargetNode is not ClassDeclarationSyntax syntax) return null;
        if (!Parsing.DeclarationRules.IsMemoryClass(type) || !IsImplementable(type, syntax)) return null;
        if (context.Attributes.Length != 1) return null;
        var devmem = ParseDeviceMemory(context.Attributes[0]);
        if (devmem == null) return null;
        var callbacks = ParseCallbacks(type, ct);
        foreach (var member in type.GetMembers())
            if (!member.IsImplicitlyDeclared && (Parsing.GeneratedMembers.IsReservedForMemory(member.Name) || Parsing.GeneratedMembers.IsReservedByOptions(member.Name, false, devmem.PageCounters, devmem.Configurable))) return null;
        return new DriverModel(
            type.ContainingNamespace.IsGlobalNamespace ? "" : type.ContainingNamespace.ToDisplayString(),
            type.Name,
            MetadataName(type),
            type.Name,
            UpdateLock: null,
            Sync: 0,
            Owner: null,
            FilterOwnMigrations: true,
            FaultTimeoutMs: 1000,
            devmem,
            FaultBuffer: null,
            P2pExporter: false,
            P2pImporter: false,
            callbacks,
            Memory: null,
            MemoryProvider: true);
    }

    /// <summary>A top-level, non-generic, non-static partial class (every declaration partial).</summary>
    internal static bool IsImplementable(INamedTypeSymbol type, ClassDeclarationSyntax syntax)
    {
        if (type.TypeKind != TypeKind.Class || type.IsStatic || type.ContainingType != null || type.IsGenericType) return false;
        if (!syntax.Modifiers.Any(SyntaxKind.PartialKeyword)) return false;
        foreach (var reference in type.DeclaringSyntaxReferences)
            if (reference.GetSyntax() is ClassDeclarationSyntax c && !c.Modifiers.Any(SyntaxKind.PartialKeyword)) return false;
        return true;
    }

    private static DeviceMemoryModel? ParseDeviceMemory(AttributeData attribute)
    {
        if (attribute.ConstructorArguments.Length != 1 || attribute.ConstructorArguments[0].Value is not int kind || kind is not (1 or 2 or 5)) return null;
        long chunk = 256L << 20;
        int max = 16, initial = 0;
        bool large = true, split = true, counters = false, configurable = false;
        foreach (var arg in attribute.NamedArguments)
        {
            switch (arg.Key)
            {
                case "ChunkBytes": chunk = arg.Value.Value is long c ? c : -1; break;
                case "MaxChunks": max = arg.Value.Value is int m ? m : -1; break;
                case "LargeFolios": large = arg.Value.Value is true; break;
                case "InitialChunks": initial = arg.Value.Value is int i ? i : -1; break;
                case "SplitFolios": split = arg.Value.Value is true; break;
                case "PageCounters": counters = arg.Value.Value is true; break;
                case "Configurable": configurable = arg.Value.Value is true; break;
            }
        }
        if (!Parsing.DeclarationRules.IsValidChunk(chunk) || max <= 0 || initial < 0 || initial > max) return null;
        return new DeviceMemoryModel(kind, chunk, max, large, initial, split, counters, configurable);
    }

    private static FaultBufferModel? ParseFaultBuffer(AttributeData attribute)
    {
        int entries = 4096, batch = 256, replay = 1;
        foreach (var arg in attribute.NamedArguments)
        {
            switch (arg.Key)
            {
                case "Entries": entries = arg.Value.Value is int e ? e : -1; break;
                case "BatchSize": batch = arg.Value.Value is int b ? b : -1; break;
                case "Replay": replay = arg.Value.Value is int r ? r : -1; break;
            }
        }
        if (entries <= 0 || batch <= 0 || batch > entries || replay is < 0 or > 3) return null;
        return new FaultBufferModel(entries, batch, replay);
    }

    private static EquatableArray<CallbackModel> ParseCallbacks(INamedTypeSymbol type, CancellationToken ct)
    {
        var found = new string?[Parsing.CallbackSignatures.All.Length];
        var duplicated = new bool[found.Length];
        var errno = new bool[found.Length];
        foreach (var member in type.GetMembers())
        {
            ct.ThrowIfCancellationRequested();
            if (member is not IMethodSymbol method) continue;
            foreach (var attribute in method.GetAttributes())
            {
                var signature = Parsing.CallbackSignatures.ForAttribute(attribute.AttributeClass);
                if (signature == null || !Parsing.CallbackSignatures.Matches(signature, method)) continue;
                int k = (int)signature.Kind;
                if (found[k] != null) duplicated[k] = true;
                found[k] = method.Name;
                errno[k] = signature.AlternativeReturns != null
                    && method.ReturnType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat) == signature.AlternativeReturns;
            }
        }
        var builder = ImmutableArray.CreateBuilder<CallbackModel>();
        for (int k = 0; k < found.Length; k++)
            if (found[k] is { } methodName && !duplicated[k]) builder.Add(new CallbackModel((CallbackKind)k, methodName, errno[k]));
        return new EquatableArray<CallbackModel>(builder.ToImmutable());
    }

    private static string MetadataName(INamedTypeSymbol type)
        => type.ContainingNamespace.IsGlobalNamespace ? type.MetadataName : type.ContainingNamespace.ToDisplayString() + "." + type.MetadataName;
}
