using Hmm.Analyzers.Rules;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Testing;

namespace Hmm.Analyzers.Tests.Support;

/// <summary>Runs a code fix over markup source: the fixed text must match exactly, compile, and carry no HMM diagnostic.</summary>
internal static class HmmFixVerifier<TFix>
    where TFix : CodeFixProvider, new()
{
    /// <param name="compilationEnd">The diagnostic is decided at compilation end (HMM1013 needs callee summaries): the editor offers such fixes only from the build's error list, so the test framework's local-diagnostic check is skipped.</param>
    public static Task VerifyAsync(string before, string after, bool compilationEnd = false)
    {
        var test = new CSharpCodeFixTest<HmmFlowAnalyzer, TFix, DefaultVerifier>
        {
            ReferenceAssemblies = OfflineReferences.Framework,
            TestCode = HmmVerifier.Usings + before,
            FixedCode = HmmVerifier.Usings + after,
        };
        test.TestState.AdditionalReferences.AddRange(OfflineReferences.All);
        test.FixedState.AdditionalReferences.AddRange(OfflineReferences.All);
        if (compilationEnd) test.CodeFixTestBehaviors |= CodeFixTestBehaviors.SkipLocalDiagnosticCheck;
        return test.RunAsync();
    }

    /// <summary>The diagnostics in the markup are reported and the fix offers nothing for them (the shape is not one it repairs).</summary>
    public static Task VerifyNoFixAsync(string code, bool compilationEnd = true) => VerifyAsync(code, code, compilationEnd);
}
