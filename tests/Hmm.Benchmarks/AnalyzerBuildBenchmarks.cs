using System.Collections.Immutable;
using BenchmarkDotNet.Attributes;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Hmm.Benchmarks;

/// <summary>
/// Issue 11 acceptance 5: the cost of the HMM1xxx analyzers on a build. The synthetic corpus of
/// about 50,000 lines (<see cref="AnalyzerCorpus"/>) goes through what a build does before emit:
/// the DSL generator, then binding with all compiler diagnostics (the baseline); and the same
/// with the analyzer attached (binding once for the diagnostics, the analyzer's operation trees on
/// top, as csc does with analyzers). Both sides run the generator, so the compilation the analyzer
/// sees is the one a build has (generated trampolines included), and the baseline pays for it too.
/// </summary>
/// <remarks>
/// <c>HMM_ANALYZER_DLL</c> replaces the analyzer with another build of Hmm.Analyzers.dll (for
/// example main's), so old and new can be run alternately in the same conditions.
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
