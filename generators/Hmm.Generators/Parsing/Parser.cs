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

        string? updateLock = null, owner = null;
        int sync = 0, timeout = 1000;
        bool filter = true;
        foreach (var arg in driver.NamedArguments)
        {
            switch (arg.Key)
            {
                case "UpdateLock": updateLock = arg.Value.Value as string; break;
                case "Sync": sync = arg.Value.Value is int s ? s : -1; break;
                case "Owner": owner = arg.Value.Value as string; break;
                case "FilterOwnMigrations": filter = arg.Value.Value is true; break;
                case "FaultTimeoutMs": timeout = arg.Value.Value is int t ? t : -1; break;
            }
        }
        if (sync is < 0 or > 2 || timeout <= 0) return null;
        if (updateLock != null && !IsKernelMutexMember(type, updateLock)) return null;
        if (owner != null && !IsOwnerMember(type, owner)) return null;
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

        var callbacks = ParseCallbacks(type, ct);
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
            callbacks);
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

    /// <summary>An instance field or property of type KernelMutex named <paramref name="name"/>.</summary>
    internal static bool IsKernelMutexMember(INamedTypeSymbol type, string name)
    {
        foreach (var member in type.GetMembers(name))
        {
            var memberType = member switch
            {
                IFieldSymbol f when !f.IsStatic => f.Type,
                IPropertySymbol p when !p.IsStatic && p.GetMethod != null && p.Parameters.Length == 0 => p.Type,
                _ => null,
            };
            if (memberType?.ToDisplayString() == KnownNames.KernelMutex) return true;
        }
        return false;
    }

    /// <summary>An instance field or readable property of a reference type named <paramref name="name"/>.</summary>
    internal static bool IsOwnerMember(INamedTypeSymbol type, string name)
    {
        foreach (var member in type.GetMembers(name))
        {
            var memberType = member switch
            {
                IFieldSymbol f when !f.IsStatic => f.Type,
                IPropertySymbol p when !p.IsStatic && p.GetMethod != null && p.Parameters.Length == 0 => p.Type,
                _ => null,
            };
            if (memberType is { IsReferenceType: true }) return true;
        }
        return false;
    }

    private static DeviceMemoryModel? ParseDeviceMemory(AttributeData attribute)
    {
        if (attribute.ConstructorArguments.Length != 1 || attribute.ConstructorArguments[0].Value is not int kind || kind is < 0 or > 2) return null;
        long chunk = 256L << 20;
        int max = 16;
        bool large = true;
        foreach (var arg in attribute.NamedArguments)
        {
            switch (arg.Key)
            {
                case "ChunkBytes": chunk = arg.Value.Value is long c ? c : -1; break;
                case "MaxChunks": max = arg.Value.Value is int m ? m : -1; break;
                case "LargeFolios": large = arg.Value.Value is true; break;
            }
        }
        if (!IsValidChunk(chunk) || max <= 0) return null;
        return new DeviceMemoryModel(kind, chunk, max, large);
    }

    /// <summary>ChunkBytes must be a positive multiple of 2 MiB (memremap_pages' section granularity here).</summary>
    internal static bool IsValidChunk(long bytes) => bytes > 0 && bytes % (2L << 20) == 0;

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
            }
        }
        var builder = ImmutableArray.CreateBuilder<CallbackModel>();
        for (int k = 0; k < found.Length; k++)
            if (found[k] is { } methodName && !duplicated[k]) builder.Add(new CallbackModel((CallbackKind)k, methodName));
        return new EquatableArray<CallbackModel>(builder.ToImmutable());
    }

    private static string MetadataName(INamedTypeSymbol type)
        => type.ContainingNamespace.IsGlobalNamespace ? type.MetadataName : type.ContainingNamespace.ToDisplayString() + "." + type.MetadataName;
}
