using Hmm.Analyzers.CodeFixes.DriverShape;
using Hmm.Analyzers.DriverShape;
using Hmm.Analyzers.Tests.Support;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Testing;

namespace Hmm.Analyzers.Tests.DriverShape;

/// <summary>Runs <see cref="DriverShapeAnalyzer"/> (and its code fix) offline over a driver written with the DSL's usings.</summary>
internal static class DriverShapeVerifier
{
    public const string Usings = """
        using System;
        using Hmm.Dsl;
        using Hmm.Runtime;
        using Hmm.Runtime.DeviceMemory;
        using Hmm.Runtime.Devices;
        using Hmm.Runtime.Locking;
        using Hmm.Runtime.Mirror;
        using Hmm.Runtime.Mm;
        using Hmm.Runtime.Pci;

        """;

    public static Task VerifyAsync(string markup, params DiagnosticResult[] expected)
    {
        var test = new CSharpAnalyzerTest<DriverShapeAnalyzer, DefaultVerifier>
        {
            ReferenceAssemblies = OfflineReferences.Framework,
            TestCode = Usings + markup,
        };
        test.TestState.AdditionalReferences.AddRange(OfflineReferences.All);
        test.ExpectedDiagnostics.AddRange(expected);
        return test.RunAsync();
    }

    public static Task VerifyFixAsync(string markup, string fixedCode)
    {
        var test = new CSharpCodeFixTest<DriverShapeAnalyzer, MakeDriverPartialCodeFix, DefaultVerifier>
        {
            ReferenceAssemblies = OfflineReferences.Framework,
            TestCode = Usings + markup,
            FixedCode = Usings + fixedCode,
        };
        test.TestState.AdditionalReferences.AddRange(OfflineReferences.All);
        test.FixedState.AdditionalReferences.AddRange(OfflineReferences.All);
        return test.RunAsync();
    }
}
