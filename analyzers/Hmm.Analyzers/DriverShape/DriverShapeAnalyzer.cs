using System.Collections.Immutable;
using Hmm.Generators.Models;
using Hmm.Generators.Parsing;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;
using static Hmm.Analyzers.DriverShape.DriverShapeDescriptors;
using DslNames = Hmm.Generators.KnownNames;

namespace Hmm.Analyzers.DriverShape;

/// <summary>
/// HMM0001–HMM0015: checks a driver DSL declaration the way the generator reads it, so that every
/// declaration the generator skips (or partly skips) gets one diagnostic at the offending span.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class DriverShapeAnalyzer : DiagnosticAnalyzer
{
    /// <inheritdoc/>
    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } =
        [NotPartial, Nested, Generic, WrongSignature, DuplicateCallback, MissingCallback, UpdateLock, Owner,
         UnusedCallback, OutsideDriver, BadArgument, ReservedName, Memory, TwoMemories, NoMigrateToRam];

    /// <inheritdoc/>
    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            // Nothing to check in a compilation that does not see the DSL.
            var driverAttribute = Hmm.Analyzers.Flow.RuntimeTypes.Of(start.Compilation).Get(DslNames.HmmDriverAttribute);
            if (driverAttribute == null) return;
            var names = new DslTypes(start.Compilation, driverAttribute);
            start.RegisterSymbolAction(c => AnalyzeType(c, names), SymbolKind.NamedType);
        });
    }

    private sealed class DslTypes(Compilation compilation, INamedTypeSymbol driver)
    {
        public INamedTypeSymbol Driver { get; } = driver;
        public INamedTypeSymbol? DeviceMemory { get; } = Hmm.Analyzers.Flow.RuntimeTypes.Of(compilation).Get(DslNames.DeviceMemoryAttribute);
        public INamedTypeSymbol? FaultBuffer { get; } = Hmm.Analyzers.Flow.RuntimeTypes.Of(compilation).Get(DslNames.FaultBufferAttribute);
        public INamedTypeSymbol? Exporter { get; } = Hmm.Analyzers.Flow.RuntimeTypes.Of(compilation).Get(DslNames.P2pExporterAttribute);
        public INamedTypeSymbol? Importer { get; } = Hmm.Analyzers.Flow.RuntimeTypes.Of(compilation).Get(DslNames.P2pImporterAttribute);
    }

    private static void AnalyzeType(SymbolAnalysisContext context, DslTypes dsl)
    {
        var type = (INamedTypeSymbol)context.Symbol;
        AttributeData? driver = null, devmem = null, faultBuffer = null, exporter = null, importer = null;
        foreach (var a in type.GetAttributes())
        {
            if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, dsl.Driver)) driver = a;
            else if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, dsl.DeviceMemory)) devmem = a;
            else if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, dsl.FaultBuffer)) faultBuffer = a;
            else if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, dsl.Exporter)) exporter = a;
            else if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, dsl.Importer)) importer = a;
        }
        if (driver == null && devmem != null)
        {
            AnalyzeMemoryClass(context, type, devmem);
            return;
        }
        if (driver == null)
        {
            ReportCallbacksOutsideDriver(context, type, null);
            return;
        }

        var identifier = IdentifierOf(type, context.CancellationToken);
        if (identifier == null) return;
        CheckClassShape(context, type, identifier);

        CheckDriverArguments(context, type, driver);
        CheckDeviceMemory(context, devmem);
        CheckFaultBuffer(context, faultBuffer);
        bool shared = CheckMemory(context, type, driver, devmem);

        var callbacks = CheckCallbacks(context, type);
        bool hasCopy = callbacks[(int)CallbackKind.CopyPages] != null;
        if (devmem != null && !hasCopy)
        {
            var sig = CallbackSignatures.All[(int)CallbackKind.CopyPages];
            context.ReportDiagnostic(Diagnostic.Create(MissingCallback, AttributeLocation(devmem, identifier, context.CancellationToken), "DeviceMemory", type.Name, sig.ShortName, sig.Text));
        }
        if (shared && !hasCopy)
        {
            var sig = CallbackSignatures.All[(int)CallbackKind.CopyPages];
            context.ReportDiagnostic(Diagnostic.Create(MissingCallback, ArgumentLocation(driver, "Memory", context.CancellationToken), "HmmDriver(Memory)", type.Name, sig.ShortName, sig.Text));
        }
        // A Memory argument that HMM0013/HMM0014 already reported still means "this driver migrates": no cascade of HMM0009.
        bool namesMemory = false;
        foreach (var arg in driver.NamedArguments) namesMemory |= arg.Key == "Memory" && arg.Value.Value is string;
        bool migrates = devmem != null || namesMemory;
        Unused(context, callbacks, CallbackKind.CopyPages, migrates, "DeviceMemory");
        Unused(context, callbacks, CallbackKind.OnPageFree, devmem != null, "DeviceMemory");
        Unused(context, callbacks, CallbackKind.OnMigrateToRam, migrates, "DeviceMemory");
        Unused(context, callbacks, CallbackKind.OnMigrated, migrates, "DeviceMemory");
        Unused(context, callbacks, CallbackKind.AllocatePage, migrates, "DeviceMemory");
        Unused(context, callbacks, CallbackKind.BeforeMigrateToRam, migrates, "DeviceMemory");
        CheckMigrateToRamHook(context, type, callbacks, driver, devmem, shared);
        Unused(context, callbacks, CallbackKind.FaultPolicy, faultBuffer != null, "FaultBuffer");
        Unused(context, callbacks, CallbackKind.OnP2pExport, exporter != null, "P2pExporter");
        Unused(context, callbacks, CallbackKind.OnP2pImport, importer != null, "P2pImporter");

        bool generatesDevmem = devmem != null && hasCopy;
        bool migration = (generatesDevmem && devmem!.ConstructorArguments.Length == 1 && devmem.ConstructorArguments[0].Value is 1 or 2) || (shared && hasCopy);
        bool snapshot = IsTrue(driver, "GenerateSnapshot"), counters = generatesDevmem && IsTrue(devmem!, "PageCounters");
        bool configurable = generatesDevmem && IsTrue(devmem!, "Configurable");
        foreach (var member in type.GetMembers())
        {
            if (member.IsImplicitlyDeclared || IsGenerated(member)) continue;
            if ((GeneratedMembers.IsReserved(member.Name, generatesDevmem, migration, faultBuffer != null, exporter != null, importer != null)
                 || GeneratedMembers.IsReservedByOptions(member.Name, snapshot, counters, configurable))
                && member.Locations.FirstOrDefault(l => l.IsInSource) is { } location)
                context.ReportDiagnostic(Diagnostic.Create(ReservedName, location, member.Name, type.Name));
        }
    }

    /// <summary>
    /// A device-level memory class ([DeviceMemory], no [HmmDriver]): the same class shape rules, its
    /// arguments, the callbacks its generated memory calls ([OnPageFree], [OnMigrateToRam]) and its
    /// reserved names; any other callback is HMM0010.
    /// </summary>
    private static void AnalyzeMemoryClass(SymbolAnalysisContext context, INamedTypeSymbol type, AttributeData devmem)
    {
        var identifier = IdentifierOf(type, context.CancellationToken);
        if (identifier == null) return;
        CheckClassShape(context, type, identifier);
        CheckDeviceMemory(context, devmem);
        ReportCallbacksOutsideDriver(context, type, [CallbackKind.OnPageFree, CallbackKind.OnMigrateToRam]);
        var found = new IMethodSymbol?[CallbackSignatures.All.Length];
        foreach (var member in type.GetMembers())
        {
            if (member is not IMethodSymbol method || IsGenerated(method)) continue;
            foreach (var attribute in method.GetAttributes())
            {
                var signature = CallbackSignatures.ForAttribute(attribute.AttributeClass);
                if (signature == null || signature.Kind is not (CallbackKind.OnPageFree or CallbackKind.OnMigrateToRam)) continue;
                var location = method.Locations.FirstOrDefault(l => l.IsInSource);
                if (location == null) continue;
                if (!CallbackSignatures.Matches(signature, method))
                    context.ReportDiagnostic(Diagnostic.Create(WrongSignature, location, method.Name, signature.ShortName, signature.Text));
                else if (found[(int)signature.Kind] is { } first)
                    context.ReportDiagnostic(Diagnostic.Create(DuplicateCallback, location, signature.ShortName, first.Name));
                else found[(int)signature.Kind] = method;
            }
        }
        foreach (var member in type.GetMembers())
        {
            if (member.IsImplicitlyDeclared || IsGenerated(member)) continue;
            if ((GeneratedMembers.IsReservedForMemory(member.Name) || GeneratedMembers.IsReservedByOptions(member.Name, false, IsTrue(devmem, "PageCounters"), IsTrue(devmem, "Configurable")))
                && member.Locations.FirstOrDefault(l => l.IsInSource) is { } location)
                context.ReportDiagnostic(Diagnostic.Create(ReservedName, location, member.Name, type.Name));
        }
    }

    /// <summary>
    /// HMM0015: [BeforeMigrateToRam] with device memory (own, or the shared class's) that is not
    /// device-private: a CPU access to coherent or p2p memory never faults into migrate_to_ram.
    /// </summary>
    private static void CheckMigrateToRamHook(SymbolAnalysisContext context, INamedTypeSymbol type, IMethodSymbol?[] callbacks, AttributeData driver, AttributeData? devmem, bool shared)
    {
        if (callbacks[(int)CallbackKind.BeforeMigrateToRam] is not { } hook) return;
        var memory = devmem;
        if (memory == null && shared)
        {
            foreach (var arg in driver.NamedArguments)
                if (arg.Key == "Memory" && arg.Value.Value is string name && DeclarationRules.IsMemoryMember(type, name, out var memoryType))
                    foreach (var a in memoryType!.GetAttributes())
                        if (a.AttributeClass?.ToDisplayString() == DslNames.DeviceMemoryAttribute) memory = a;
        }
        // DevicePageKind.Private is 1; an unreadable kind is HMM0011's business.
        if (memory == null || memory.ConstructorArguments.Length != 1 || memory.ConstructorArguments[0].Value is not int kind || kind == 1) return;
        string kindName = kind switch { 2 => "DevicePageKind.Coherent", 5 => "DevicePageKind.P2PDma", _ => "kind " + kind };
        context.ReportDiagnostic(Diagnostic.Create(NoMigrateToRam, hook.Locations[0], hook.Name, type.Name, kindName));
    }

    /// <summary>HMM0013/HMM0014 for HmmDriver(Memory); true when the driver validly shares a device-level memory.</summary>
    private static bool CheckMemory(SymbolAnalysisContext context, INamedTypeSymbol type, AttributeData driver, AttributeData? devmem)
    {
        foreach (var arg in driver.NamedArguments)
        {
            if (arg.Key != "Memory" || arg.Value.Value is not string name) continue;
            var location = ArgumentLocation(driver, arg.Key, context.CancellationToken);
            if (!DeclarationRules.IsMemoryMember(type, name, out _))
            {
                context.ReportDiagnostic(Diagnostic.Create(Memory, location, name, type.Name));
                return false;
            }
            if (devmem != null)
            {
                context.ReportDiagnostic(Diagnostic.Create(TwoMemories, location, type.Name, name));
                return false;
            }
            return true;
        }
        return false;
    }

    /// <summary>HMM0001–HMM0003: partial in every declaration, top-level, not generic.</summary>
    private static void CheckClassShape(SymbolAnalysisContext context, INamedTypeSymbol type, Location identifier)
    {
        foreach (var reference in type.DeclaringSyntaxReferences)
        {
            if (reference.GetSyntax(context.CancellationToken) is ClassDeclarationSyntax c && !c.Modifiers.Any(SyntaxKind.PartialKeyword))
            {
                context.ReportDiagnostic(Diagnostic.Create(NotPartial, c.Identifier.GetLocation(), type.Name));
                break;
            }
        }
        if (type.ContainingType != null) context.ReportDiagnostic(Diagnostic.Create(Nested, identifier, type.Name, type.ContainingType.Name));
        if (type.IsGenericType) context.ReportDiagnostic(Diagnostic.Create(Generic, identifier, type.Name));
    }

    private static void CheckDriverArguments(SymbolAnalysisContext context, INamedTypeSymbol type, AttributeData driver)
    {
        var ct = context.CancellationToken;
        if (driver.ConstructorArguments.Length == 1 && driver.ConstructorArguments[0].Value is not string { Length: > 0 })
            context.ReportDiagnostic(Diagnostic.Create(BadArgument, ArgumentLocation(driver, null, ct), "The driver name must be a non-empty string"));
        foreach (var arg in driver.NamedArguments)
        {
            switch (arg.Key)
            {
                case "UpdateLock" when arg.Value.Value is string name && !DeclarationRules.IsKernelMutexMember(type, name):
                    context.ReportDiagnostic(Diagnostic.Create(UpdateLock, ArgumentLocation(driver, arg.Key, ct), name, type.Name));
                    break;
                case "Owner" when arg.Value.Value is string name && !DeclarationRules.IsOwnerMember(type, name):
                    context.ReportDiagnostic(Diagnostic.Create(Owner, ArgumentLocation(driver, arg.Key, ct), name, type.Name));
                    break;
                case "FaultTimeoutMs" when arg.Value.Value is int ms && ms <= 0:
                    context.ReportDiagnostic(Diagnostic.Create(BadArgument, ArgumentLocation(driver, arg.Key, ct), $"FaultTimeoutMs must be positive (was {ms})"));
                    break;
                case "FaultBatchPages" when arg.Value.Value is int pages && !DeclarationRules.IsValidFaultBatch(pages):
                    context.ReportDiagnostic(Diagnostic.Create(BadArgument, ArgumentLocation(driver, arg.Key, ct), $"FaultBatchPages must be between 1 and 512 (was {pages})"));
                    break;
                case "Sync" when arg.Value.Value is int sync && sync is < 0 or > 2:
                    context.ReportDiagnostic(Diagnostic.Create(BadArgument, ArgumentLocation(driver, arg.Key, ct), $"Sync must be a defined MirrorSync value (was {sync})"));
                    break;
            }
        }
    }

    private static void CheckDeviceMemory(SymbolAnalysisContext context, AttributeData? devmem)
    {
        if (devmem == null) return;
        var ct = context.CancellationToken;
        if (devmem.ConstructorArguments.Length == 1 && devmem.ConstructorArguments[0].Value is int kind && kind is not (1 or 2 or 5))
            context.ReportDiagnostic(Diagnostic.Create(BadArgument, ArgumentLocation(devmem, null, ct), $"DeviceMemory kind must be Private, Coherent or P2PDma (was {kind})"));
        int limit = 16;
        foreach (var arg in devmem.NamedArguments)
            if (arg.Key == "MaxChunks" && arg.Value.Value is int m) limit = m;
        foreach (var arg in devmem.NamedArguments)
        {
            // Initial chunks beyond the limit could never be plugged (only checked against a valid limit: no cascade).
            if (arg.Key == "InitialChunks" && arg.Value.Value is int initial && (initial < 0 || (limit > 0 && initial > limit)))
                context.ReportDiagnostic(Diagnostic.Create(BadArgument, ArgumentLocation(devmem, arg.Key, ct), $"InitialChunks must be between 0 and MaxChunks ({limit}) (was {initial})"));
            if (arg.Key == "ChunkBytes" && arg.Value.Value is long bytes && !DeclarationRules.IsValidChunk(bytes))
                context.ReportDiagnostic(Diagnostic.Create(BadArgument, ArgumentLocation(devmem, arg.Key, ct), $"ChunkBytes must be a positive multiple of 2 MiB (was {bytes})"));
            if (arg.Key == "MaxChunks" && arg.Value.Value is int max && max <= 0)
                context.ReportDiagnostic(Diagnostic.Create(BadArgument, ArgumentLocation(devmem, arg.Key, ct), $"MaxChunks must be positive (was {max})"));
        }
    }

    private static void CheckFaultBuffer(SymbolAnalysisContext context, AttributeData? faultBuffer)
    {
        if (faultBuffer == null) return;
        int entries = 4096, batch = 256;
        foreach (var arg in faultBuffer.NamedArguments)
        {
            if (arg.Key == "Entries" && arg.Value.Value is int e) entries = e;
            if (arg.Key == "BatchSize" && arg.Value.Value is int b) batch = b;
            if (arg.Key == "Replay" && arg.Value.Value is int r && r is < 0 or > 3)
                context.ReportDiagnostic(Diagnostic.Create(BadArgument, ArgumentLocation(faultBuffer, arg.Key, context.CancellationToken), $"Replay must be a defined ReplayPolicy value (was {r})"));
        }
        if (entries <= 0)
            context.ReportDiagnostic(Diagnostic.Create(BadArgument, ArgumentLocation(faultBuffer, "Entries", context.CancellationToken), $"Entries must be positive (was {entries})"));
        else if (batch <= 0 || batch > entries)
            context.ReportDiagnostic(Diagnostic.Create(BadArgument, ArgumentLocation(faultBuffer, "BatchSize", context.CancellationToken), $"BatchSize must be between 1 and Entries ({entries}) (was {batch})"));
    }

    /// <summary>HMM0004/HMM0005 per method; returns the well-formed callback per kind (null when absent).</summary>
    private static IMethodSymbol?[] CheckCallbacks(SymbolAnalysisContext context, INamedTypeSymbol type)
    {
        var found = new IMethodSymbol?[CallbackSignatures.All.Length];
        foreach (var member in type.GetMembers())
        {
            if (member is not IMethodSymbol method || IsGenerated(method)) continue;
            foreach (var attribute in method.GetAttributes())
            {
                var signature = CallbackSignatures.ForAttribute(attribute.AttributeClass);
                if (signature == null) continue;
                var location = method.Locations.FirstOrDefault(l => l.IsInSource);
                if (location == null) continue;
                if (!CallbackSignatures.Matches(signature, method))
                {
                    context.ReportDiagnostic(Diagnostic.Create(WrongSignature, location, method.Name, signature.ShortName, signature.Text));
                    continue;
                }
                int k = (int)signature.Kind;
                if (found[k] != null)
                    context.ReportDiagnostic(Diagnostic.Create(DuplicateCallback, location, signature.ShortName, found[k]!.Name));
                else found[k] = method;
            }
        }
        return found;
    }

    private static void Unused(SymbolAnalysisContext context, IMethodSymbol?[] callbacks, CallbackKind kind, bool used, string needs)
    {
        if (used || callbacks[(int)kind] is not { } method) return;
        context.ReportDiagnostic(Diagnostic.Create(UnusedCallback, method.Locations[0], CallbackSignatures.All[(int)kind].ShortName, method.Name, needs));
    }

    private static void ReportCallbacksOutsideDriver(SymbolAnalysisContext context, INamedTypeSymbol type, CallbackKind[]? allowed)
    {
        foreach (var member in type.GetMembers())
        {
            if (member is not IMethodSymbol method) continue;
            foreach (var attribute in method.GetAttributes())
                if (CallbackSignatures.ForAttribute(attribute.AttributeClass) is { } signature && (allowed == null || System.Array.IndexOf(allowed, signature.Kind) < 0)
                    && method.Locations.FirstOrDefault(l => l.IsInSource) is { } location)
                    context.ReportDiagnostic(Diagnostic.Create(OutsideDriver, location, signature.ShortName, method.Name, type.Name));
        }
    }

    private static bool IsGenerated(ISymbol symbol)
    {
        foreach (var a in symbol.GetAttributes())
            if (a.AttributeClass?.ToDisplayString() == "System.CodeDom.Compiler.GeneratedCodeAttribute") return true;
        return false;
    }

    private static Location? IdentifierOf(INamedTypeSymbol type, CancellationToken ct)
    {
        foreach (var reference in type.DeclaringSyntaxReferences)
            if (reference.GetSyntax(ct) is ClassDeclarationSyntax c) return c.Identifier.GetLocation();
        return null;
    }

    private static Location AttributeLocation(AttributeData attribute, Location fallback, CancellationToken ct)
        => attribute.ApplicationSyntaxReference?.GetSyntax(ct).GetLocation() ?? fallback;

    /// <summary>The named argument's expression (or the first positional one when <paramref name="name"/> is null), else the attribute.</summary>
    private static Location ArgumentLocation(AttributeData attribute, string? name, CancellationToken ct)
    {
        if (attribute.ApplicationSyntaxReference?.GetSyntax(ct) is not AttributeSyntax syntax) return Location.None;
        foreach (var arg in syntax.ArgumentList?.Arguments ?? default)
        {
            if (name == null && arg.NameEquals == null) return arg.Expression.GetLocation();
            if (name != null && arg.NameEquals?.Name.Identifier.ValueText == name) return arg.Expression.GetLocation();
        }
        return syntax.GetLocation();
    }

    private static bool IsTrue(AttributeData attribute, string name)
    {
        foreach (var arg in attribute.NamedArguments)
            if (arg.Key == name) return arg.Value.Value is true;
        return false;
    }
}
