using Hmm.Analyzers.Rules;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Testing;

namespace Hmm.Analyzers.Tests.Support;

/// <summary>Runs <see cref="HmmFlowAnalyzer"/> over markup source against the offline references: every HMM1xxx diagnostic must be marked with its exact span.</summary>
internal static class HmmVerifier
{
    /// <summary>The usings every test snippet starts with.</summary>
    public const string Usings = """
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

    public static Task VerifyAsync(string markup)
    {
        var test = new CSharpAnalyzerTest<HmmFlowAnalyzer, DefaultVerifier>
        {
            ReferenceAssemblies = OfflineReferences.Framework,
            TestCode = Usings + markup,
        };
        test.TestState.AdditionalReferences.AddRange(OfflineReferences.All);
        return test.RunAsync();
    }
}
