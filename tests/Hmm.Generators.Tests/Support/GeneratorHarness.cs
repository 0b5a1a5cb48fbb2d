using System.Collections.Immutable;
using Hmm.Generators;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Hmm.Generators.Tests.Support;

/// <summary>
/// Runs <see cref="DriverGenerator"/> over sources with CSharpGeneratorDriver, offline: .NET 10
/// reference assemblies from Basic.Reference.Assemblies.Net100 plus the built Hmm.Runtime.dll.
/// </summary>
internal static class GeneratorHarness
{
    public static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    public static ImmutableArray<MetadataReference> References { get; } =
        [.. Basic.Reference.Assemblies.Net100.References.All,
         MetadataReference.CreateFromFile(typeof(Hmm.Runtime.Mm.Machine).Assembly.Location)];

    private const string GlobalUsings = """
        global using System;
        global using Hmm.Dsl;
        global using Hmm.Runtime;
        global using Hmm.Runtime.DeviceMemory;
        global using Hmm.Runtime.Devices;
        global using Hmm.Runtime.Locking;
        global using Hmm.Runtime.Mirror;
        global using Hmm.Runtime.Mm;
        global using Hmm.Runtime.Pci;
        """;

    public static CSharpCompilation Compile(params string[] sources)
        => CSharpCompilation.Create(
            "Drivers",
            [CSharpSyntaxTree.ParseText(GlobalUsings, ParseOptions, path: "GlobalUsings.cs"),
             .. sources.Select((s, i) => CSharpSyntaxTree.ParseText(s, ParseOptions, path: $"Input{i}.cs"))],
            References,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));

    public static GeneratorDriver Driver(bool track = true)
        => CSharpGeneratorDriver.Create(
            [new DriverGenerator().AsSourceGenerator()],
            parseOptions: ParseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: track));

    /// <summary>Runs the generator; returns its result and the output compilation's diagnostics (warnings and errors).</summary>
    public static (GeneratorDriverRunResult Result, ImmutableArray<Diagnostic> Diagnostics) Run(params string[] sources)
    {
        var compilation = Compile(sources);
        var driver = Driver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out var generatorDiagnostics);
        var diagnostics = generatorDiagnostics.AddRange(output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning));
        return (driver.GetRunResult(), diagnostics);
    }
}
