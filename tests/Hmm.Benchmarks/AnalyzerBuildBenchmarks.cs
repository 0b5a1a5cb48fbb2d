using System.Collections.Immutable;
using BenchmarkDotNet.Attributes;
using Hmm.Analyzers.Rules;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Hmm.Benchmarks;

/// <summary>
/// Issue 11 acceptance 5: the cost of the HMM1xxx analyzers on a build. A synthetic corpus of
/// about 50,000 lines — the bug corpus's fixed drivers (DSL and hand-written: locks, notifier
/// callbacks, fault loops, migrations) replicated into distinct namespaces, so every body is a
/// realistic driver body — is compiled with all compiler diagnostics (the baseline), and with the
/// same plus the analyzer (binding once, as csc does with analyzers attached).
/// </summary>
[MemoryDiagnoser]
public class AnalyzerBuildBenchmarks
{
    private const string Usings = """
        using System;
        using Hmm.Dsl;
        using Hmm.Runtime;
        using Hmm.Runtime.DeviceMemory;
        using Hmm.Runtime.Devices;
        using Hmm.Runtime.Locking;
        using Hmm.Runtime.Memory;
        using Hmm.Runtime.Migration;
        using Hmm.Runtime.Mirror;
        using Hmm.Runtime.Mm;
        using Hmm.Runtime.Notifiers;

        """;

    private ImmutableArray<SyntaxTree> _trees;
    private ImmutableArray<MetadataReference> _references;
    private readonly ImmutableArray<DiagnosticAnalyzer> _analyzers = [new HmmFlowAnalyzer()];

    /// <summary>Lines in the generated corpus.</summary>
    public int Lines { get; private set; }

    [GlobalSetup]
    public void Setup()
    {
        var asm = typeof(AnalyzerBuildBenchmarks).Assembly;
        var drivers = asm.GetManifestResourceNames().Where(n => n.StartsWith("Corpus.", StringComparison.Ordinal)).Order(StringComparer.Ordinal)
            .Select(n => { using var r = new StreamReader(asm.GetManifestResourceStream(n)!); return r.ReadToEnd(); }).ToList();
        var options = CSharpParseOptions.Default.WithPreprocessorSymbols("FIXED");
        var trees = ImmutableArray.CreateBuilder<SyntaxTree>();
        int lines = 0;
        for (int copy = 0; lines < 50_000; copy++)
        {
            string text = Usings + "namespace Corpus" + copy + ";\n" + string.Join("\n", drivers);
            lines += text.Count(c => c == '\n');
            trees.Add(CSharpSyntaxTree.ParseText(text, options, path: "corpus" + copy + ".cs"));
        }
        Lines = lines;
        _trees = trees.ToImmutable();
        _references = [.. Basic.Reference.Assemblies.Net100.References.All,
                       MetadataReference.CreateFromFile(typeof(Hmm.Runtime.Mm.Machine).Assembly.Location)];
        Console.WriteLine($"// synthetic corpus: {_trees.Length} files, {Lines} lines");
    }

    private CSharpCompilation Fresh() => CSharpCompilation.Create("corpus", _trees, _references,
        new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));

    [Benchmark(Baseline = true)]
    public int AnalyzersOff() => Fresh().GetDiagnostics().Length;

    [Benchmark]
    public int AnalyzersOn() => Fresh().WithAnalyzers(_analyzers).GetAllDiagnosticsAsync().GetAwaiter().GetResult().Length;
}
