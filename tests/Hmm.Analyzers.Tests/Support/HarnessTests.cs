using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Testing;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Support;

/// <summary>The offline test harness itself: a markup span is matched exactly, against net10.0 and the runtime.</summary>
public sealed class HarnessTests
{
    [DiagnosticAnalyzer(LanguageNames.CSharp)]
    private sealed class MachineFieldAnalyzer : DiagnosticAnalyzer
    {
        public static readonly DiagnosticDescriptor Rule = new("TEST0001", "t", "field of type Machine", "Test", DiagnosticSeverity.Warning, true);
        public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => [Rule];
        public override void Initialize(AnalysisContext context)
        {
            context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
            context.EnableConcurrentExecution();
            context.RegisterSymbolAction(c =>
            {
                var f = (IFieldSymbol)c.Symbol;
                if (f.Type.ToDisplayString() == "Hmm.Runtime.Mm.Machine")
                    c.ReportDiagnostic(Diagnostic.Create(Rule, f.Locations[0]));
            }, SymbolKind.Field);
        }
    }

    [Test]
    public async Task A_markup_span_is_reported_against_offline_references()
    {
        var test = new CSharpAnalyzerTest<MachineFieldAnalyzer, DefaultVerifier>
        {
            ReferenceAssemblies = OfflineReferences.Framework,
            TestCode = "class C { Hmm.Runtime.Mm.Machine {|TEST0001:_m|} = null!; System.Span<int> S => default; }",
        };
        test.TestState.AdditionalReferences.AddRange(OfflineReferences.All);
        await test.RunAsync();
    }
}
