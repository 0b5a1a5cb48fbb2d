using Hmm.Generators.Helpers;
using Hmm.Generators.Models;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Hmm.Generators;

/// <summary>
/// The driver DSL's incremental generator: for every <c>[HmmDriver]</c> partial class it writes
/// the mirror (interval-notifier trampoline, fault loop), and where declared the device-memory
/// hotplug allocator, migration, fault-buffer service and p2p wiring. It reports nothing: a
/// declaration it cannot understand gets no generated code, and the DSL-shape analyzer
/// (HMM0xxx) says why.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed partial class DriverGenerator : IIncrementalGenerator
{
    /// <inheritdoc/>
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        // FAWMN on the driver attribute: only classes carrying it reach the transform, which turns
        // the symbol into a plain-value model at once so nothing Roslyn-owned is cached.
        IncrementalValuesProvider<DriverModel?> parsed = context.SyntaxProvider
            .ForAttributeWithMetadataName(
                KnownNames.HmmDriverAttribute,
                static (node, _) => node is ClassDeclarationSyntax,
                static (ctx, ct) => Parser.Parse(ctx, ct))
            .WithTrackingName(TrackingNames.Parse);

        // Device-level memory classes ([DeviceMemory] without [HmmDriver], shared by the drivers
        // that name them in HmmDriver.Memory): parsed like drivers, emitting only the memory.
        IncrementalValuesProvider<DriverModel> memoryModels = context.SyntaxProvider
            .ForAttributeWithMetadataName(
                KnownNames.DeviceMemoryAttribute,
                static (node, _) => node is ClassDeclarationSyntax,
                static (ctx, ct) => Parser.ParseMemoryProvider(ctx, ct))
            .WithTrackingName(TrackingNames.MemoryParse)
            .Where(static m => m is not null)
            .Select(static (m, _) => m!)
            .WithTrackingName(TrackingNames.Memories);

        // Declarations the parser did not understand drop out here (the analyzer reports them); a
        // driver sharing a device-level memory takes that memory's current model (its own transform
        // does not re-run when only the memory's file changes).
        IncrementalValuesProvider<DriverModel> drivers = parsed
            .Where(static m => m is not null)
            .Combine(memoryModels.Collect())
            .Select(static (pair, _) => Parser.ResolveMemory(pair.Left!, pair.Right))
            .Where(static m => m is not null)
            .Select(static (m, _) => m!)
            .WithTrackingName(TrackingNames.Drivers);

        // Model → text is its own step so that an unchanged model yields cached sources.
        IncrementalValuesProvider<EquatableArray<GeneratedSource>> sources = drivers
            .Select(static (m, ct) => Emitter.Emit(m, ct))
            .WithTrackingName(TrackingNames.Emit);

        context.RegisterSourceOutput(sources, static (spc, files) =>
        {
            foreach (var file in files) spc.AddSource(file.HintName, file.Text);
        });

        IncrementalValuesProvider<EquatableArray<GeneratedSource>> memories = memoryModels
            .Select(static (m, ct) => Emitter.Emit(m, ct))
            .WithTrackingName(TrackingNames.MemoryEmit);

        context.RegisterSourceOutput(memories, static (spc, files) =>
        {
            foreach (var file in files) spc.AddSource(file.HintName, file.Text);
        });
    }
}

/// <summary>The tracking names of the generator's steps (used by the incremental tests).</summary>
public static class TrackingNames
{
    /// <summary>The ForAttributeWithMetadataName transform: syntax + symbol → model (or null).</summary>
    public const string Parse = "HmmDriver.Parse";

    /// <summary>The understood drivers' models.</summary>
    public const string Drivers = "HmmDriver.Drivers";

    /// <summary>Model → generated sources.</summary>
    public const string Emit = "HmmDriver.Emit";

    /// <summary>The device-level memory classes' transform (<c>[DeviceMemory]</c> without <c>[HmmDriver]</c>).</summary>
    public const string MemoryParse = "HmmDeviceMemory.Parse";

    /// <summary>The understood device-level memory classes' models.</summary>
    public const string Memories = "HmmDeviceMemory.Memories";

    /// <summary>Device-level memory model → generated source.</summary>
    public const string MemoryEmit = "HmmDeviceMemory.Emit";
}
