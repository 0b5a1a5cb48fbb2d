using System.Collections.Immutable;
using BenchmarkDotNet.Attributes;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Hmm.Benchmarks;

/// <summary>
/// Issue 11 acceptance 5, the strict bound: the cost of the HMM1xxx flow analyzer on the binding of a
/// build, in process and warm. The synthetic corpus of about 50,000 lines (<see cref="AnalyzerCorpus"/>)
/// goes through the DSL generator, then the baseline binds every body with all compiler diagnostics
/// (<c>GetDiagnostics()</c>); the other side attaches the analyzer to the same generated compilation and
/// asks for all diagnostics (<c>WithAnalyzers(...).GetAllDiagnosticsAsync()</c>: the compiler's binding
/// once, feeding the analyzer driver's events, plus the analyzer's operation trees and actions on top).
/// </summary>
/// <remarks>
/// <para>
/// Both sides run the generator, so the compilation the analyzer sees is the one a build has (generated
/// trampolines included), and the baseline pays for it too. Neither side emits: lowering, IL and PDB
/// writing, which a real build does on both sides (~50 % more than binding alone, measured in process),
/// are left out, so this ratio is higher than a build's; <see cref="CommandLineBuildBenchmarks"/> is the
/// build as csc runs it. The DSL-shape analyzer (HMM0xxx, a cheap symbol action) is not attached here.
/// </para>
/// <para>
/// Why no in-process compile-and-emit pair: through the public API a host cannot attach analyzers to
/// Emit as csc does. <c>CompilationWithAnalyzers</c> forks its compilation with a new event queue for every
/// whole-compilation request and binds the fork (Roslyn's CompilationWithAnalyzers.ComputeAnalyzerDiagnosticsAsync
/// and GetAllDiagnosticsAsync), so <c>cwa.Compilation.Emit(...)</c> followed by <c>cwa.GetAnalyzerDiagnosticsAsync()</c>
/// binds twice; csc's single shared pass uses the internal AnalyzerDriver. <c>--analyzer-profile</c> with
/// <c>HMM_PROFILE_EMIT=1</c> measures this (the second step allocates a whole bind of its own).
/// </para>
/// <para>
/// <c>HMM_ANALYZER_DLL</c> replaces the analyzer with another build of Hmm.Analyzers.dll (for example
/// main's), so old and new can be run alternately in the same conditions.
/// </para>
/// </remarks>
[MemoryDiagnoser]
public class AnalyzerBuildBenchmarks
{
    private AnalyzerCorpus _corpus = null!;
    private ImmutableArray<DiagnosticAnalyzer> _analyzers;

    [GlobalSetup]
    public void Setup()
    {
        _corpus = AnalyzerCorpus.Build();
        _analyzers = [AnalyzerCorpus.Analyzer()];
        Console.WriteLine($"// synthetic corpus: {_corpus.Trees.Length} files, {_corpus.Lines} lines; analyzer from {_analyzers[0].GetType().Assembly.Location}");
        // A corpus that does not compile would measure error recovery, not a build.
        var errors = _corpus.Generated().GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        if (errors.Count != 0) throw new InvalidOperationException(errors.Count + " compile errors in the synthetic corpus, the first: " + errors[0]);
    }

    [Benchmark(Baseline = true)]
    public int AnalyzersOff() => _corpus.Generated().GetDiagnostics().Length;

    [Benchmark]
    public int AnalyzersOn() => _corpus.Generated().WithAnalyzers(_analyzers).GetAllDiagnosticsAsync().GetAwaiter().GetResult().Length;
}
