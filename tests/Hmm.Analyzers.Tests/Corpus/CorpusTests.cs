using System.Collections.Immutable;
using System.Reflection;
using Hmm.Analyzers.Rules;
using Hmm.Analyzers.Tests.Support;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Corpus;

/// <summary>
/// The bug corpus (Corpus/Drivers): small drivers, half DSL and half hand-written, each with one
/// realistic bug from a rule's failure description (first line: <c>// HMMxxxx: what goes wrong</c>).
/// As written, each must draw exactly that diagnostic; with FIXED defined (its fixed twin) none.
/// </summary>
public sealed class CorpusTests
{
    private static readonly Assembly Self = typeof(CorpusTests).Assembly;

    public static IEnumerable<string> Drivers() =>
        Self.GetManifestResourceNames().Where(n => n.StartsWith("Corpus.", StringComparison.Ordinal)).Order(StringComparer.Ordinal);

    [Test]
    public void The_corpus_has_at_least_forty_drivers_half_of_them_dsl()
    {
        var names = Drivers().ToList();
        Assert.That(names, Has.Count.GreaterThanOrEqualTo(40));
        Assert.That(names.Count(n => n.StartsWith("Corpus.dsl_", StringComparison.Ordinal)), Is.GreaterThanOrEqualTo(20));
        Assert.That(names.Count(n => n.StartsWith("Corpus.hw_", StringComparison.Ordinal)), Is.GreaterThanOrEqualTo(20));
    }

    [TestCaseSource(nameof(Drivers))]
    public async Task The_bug_draws_exactly_its_rule(string driver)
    {
        string text = Read(driver);
        string expected = text.Substring(3, 7);
        var diagnostics = await Analyze(text, fixedTwin: false);
        Assert.That(diagnostics.Select(d => d.Id), Is.EqualTo(new[] { expected }), string.Join("\n", diagnostics));
    }

    [TestCaseSource(nameof(Drivers))]
    public async Task The_fixed_twin_is_silent(string driver)
    {
        var diagnostics = await Analyze(Read(driver), fixedTwin: true);
        Assert.That(diagnostics, Is.Empty, string.Join("\n", diagnostics));
    }

    private static string Read(string resource)
    {
        using var stream = Self.GetManifestResourceStream(resource)!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>
    /// Runs the DSL generator on the driver, as a build does, then compiles it with the generated code
    /// (errors fail the test: a DSL driver must be one the generator accepts) and returns its HMM diagnostics.
    /// </summary>
    private static async Task<ImmutableArray<Diagnostic>> Analyze(string text, bool fixedTwin)
    {
        var options = CSharpParseOptions.Default.WithLanguageVersion(LanguageVersion.Preview).WithPreprocessorSymbols(fixedTwin ? new[] { "FIXED" } : Array.Empty<string>());
        var tree = CSharpSyntaxTree.ParseText(HmmVerifier.Usings + "namespace Corpus;\n" + text, options);
        var written = CSharpCompilation.Create("corpus", [tree], OfflineReferences.All,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        CSharpGeneratorDriver.Create([new Hmm.Generators.DriverGenerator().AsSourceGenerator()], parseOptions: options)
            .RunGeneratorsAndUpdateCompilation(written, out var compilation, out var generatorDiagnostics);
        Assert.That(generatorDiagnostics, Is.Empty, string.Join("\n", generatorDiagnostics));
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.That(errors, Is.Empty, string.Join("\n", errors));
        // Both analyzers a build attaches: a corpus driver must also have the DSL's shape (HMM0xxx), or the
        // generator silently leaves its callback out and a build of the corpus reports it.
        var all = await compilation.WithAnalyzers([new HmmFlowAnalyzer(), new Hmm.Analyzers.DriverShape.DriverShapeAnalyzer()]).GetAnalyzerDiagnosticsAsync();
        return [.. all.Where(d => d.Id.StartsWith("HMM", StringComparison.Ordinal)).OrderBy(d => d.Location.SourceSpan.Start)];
    }
}
