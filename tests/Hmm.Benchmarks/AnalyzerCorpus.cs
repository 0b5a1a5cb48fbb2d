using System.Collections.Immutable;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Text;

namespace Hmm.Benchmarks;

/// <summary>
/// The synthetic analyzer-build corpus (issue 11 acceptance 5): the bug corpus's fixed drivers (DSL
/// and hand-written: locks, notifier callbacks, fault loops, migrations) replicated into distinct
/// namespaces until it reaches about 50,000 lines, and the DSL generator as a build loads it.
/// </summary>
internal sealed class AnalyzerCorpus
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

    private AnalyzerCorpus(ImmutableArray<SyntaxTree> trees, ImmutableArray<MetadataReference> references, ISourceGenerator generator, CSharpParseOptions parse, int lines)
    {
        Trees = trees;
        References = references;
        Generator = generator;
        Parse = parse;
        Lines = lines;
    }

    public ImmutableArray<SyntaxTree> Trees { get; }
    public ImmutableArray<MetadataReference> References { get; }
    public ISourceGenerator Generator { get; }
    public CSharpParseOptions Parse { get; }
    public int Lines { get; }

    public static AnalyzerCorpus Build(int minLines = 50_000)
    {
        var asm = typeof(AnalyzerCorpus).Assembly;
        var drivers = asm.GetManifestResourceNames().Where(n => n.StartsWith("Corpus.", StringComparison.Ordinal)).Order(StringComparer.Ordinal)
            .Select(n => { using var r = new StreamReader(asm.GetManifestResourceStream(n)!); return r.ReadToEnd(); }).ToList();
        var options = CSharpParseOptions.Default.WithPreprocessorSymbols("FIXED");
        var trees = ImmutableArray.CreateBuilder<SyntaxTree>();
        int lines = 0;
        for (int copy = 0; lines < minLines; copy++)
        {
            string text = Usings + "namespace Corpus" + copy + ";\n" + string.Join("\n", drivers);
            lines += text.Count(c => c == '\n');
            // With its encoding, as csc reads a file: Emit with a portable PDB needs it (CS8055 otherwise).
            trees.Add(CSharpSyntaxTree.ParseText(SourceText.From(text, Encoding.UTF8), options, path: "corpus" + copy + ".cs"));
        }
        ImmutableArray<MetadataReference> references = [.. Basic.Reference.Assemblies.Net100.References.All,
            MetadataReference.CreateFromFile(typeof(Hmm.Runtime.Mm.Machine).Assembly.Location)];
        var assembly = Assembly.LoadFrom(GeneratorPath());
        var generator = (IIncrementalGenerator)Activator.CreateInstance(assembly.GetType("Hmm.Generators.DriverGenerator", throwOnError: true)!)!;
        return new AnalyzerCorpus(trees.ToImmutable(), references, generator.AsSourceGenerator(), options, lines);
    }

    /// <summary>
    /// A new compilation of the corpus (nothing bound yet), before the generator. Nullable enabled, as the
    /// repository's projects; <c>HMM_CORPUS_NULLABLE=0</c> disables it (a probe: how much of what operation
    /// trees cost is the nullable analysis the semantic model runs for the bodies it builds them from).
    /// </summary>
    public CSharpCompilation Fresh() => CSharpCompilation.Create("corpus", Trees, References,
        new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary,
            nullableContextOptions: Environment.GetEnvironmentVariable("HMM_CORPUS_NULLABLE") == "0" ? NullableContextOptions.Disable : NullableContextOptions.Enable));

    /// <summary>A new compilation with the DSL generator run on it, as a build does before binding.</summary>
    public Compilation Generated()
    {
        var driver = CSharpGeneratorDriver.Create([Generator], parseOptions: Parse);
        driver.RunGeneratorsAndUpdateCompilation(Fresh(), out var output, out _);
        return output;
    }

    /// <summary>The HMM1xxx analyzer: this build's, or the Hmm.Analyzers.dll named by HMM_ANALYZER_DLL (loaded in its own context).</summary>
    public static DiagnosticAnalyzer Analyzer()
    {
        if (Environment.GetEnvironmentVariable("HMM_ANALYZER_DLL") is not { Length: > 0 } path) return new Hmm.Analyzers.Rules.HmmFlowAnalyzer();
        var context = new IsolatedAnalyzerContext(Path.GetFullPath(path));
        var assembly = context.LoadFromAssemblyPath(Path.GetFullPath(path));
        return (DiagnosticAnalyzer)Activator.CreateInstance(assembly.GetType("Hmm.Analyzers.Rules.HmmFlowAnalyzer", throwOnError: true)!)!;
    }

    /// <summary>Loads only the other Hmm.Analyzers build; Roslyn itself is shared with the host.</summary>
    private sealed class IsolatedAnalyzerContext(string path) : System.Runtime.Loader.AssemblyLoadContext("hmm-analyzer-" + path)
    {
        protected override Assembly? Load(AssemblyName name) => null;
    }

    internal static string GeneratorPath([CallerFilePath] string here = "")
        => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here)!, "../../generators/Hmm.Generators/bin/Release/netstandard2.0/Hmm.Generators.dll"));
}
