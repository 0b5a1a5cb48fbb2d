using System.Runtime.CompilerServices;
using Microsoft.CodeAnalysis;

namespace Hmm.Analyzers.Flow;

/// <summary>
/// Hmm.Runtime's types (the Hmm.Dsl contract attributes, NotifierRange, IntervalNotifier...) by metadata
/// name, for the compilation-start actions of every rule.
/// </summary>
/// <remarks>
/// <para>
/// <c>Compilation.GetTypeByMetadataName</c> looks in the source assembly first, and the first such look-up
/// on a fresh compilation builds the merged declarations of every source file (measured on the 50,000-line
/// corpus: ~1.5 s of CPU and 125-134 MB in the analyzer's start action, which every other analyzer action
/// then waits for). The same look-up on the referenced Hmm.Runtime assembly symbol reads its metadata only
/// (measured 0 MB). So when the compilation references an assembly named Hmm.Runtime, its types are taken
/// from there; a compilation whose source is Hmm.Runtime (the runtime analysed itself), or that has no such
/// reference (the analyzer tests' stubs), falls back to the compilation-wide look-up.
/// </para>
/// <para>
/// The answer differs from the compilation-wide look-up only for a compilation that both references
/// Hmm.Runtime and declares a type of the same full name in source (the compiler warns CS0436 and binds
/// the source one) or references two assemblies named Hmm.Runtime (the compiler reports the ambiguity):
/// neither builds cleanly, so the analyzer need not be exact there.
/// </para>
/// </remarks>
internal sealed class RuntimeTypes
{
    private static readonly ConditionalWeakTable<Compilation, RuntimeTypes> PerCompilation = new();
    private static readonly ConditionalWeakTable<Compilation, RuntimeTypes>.CreateValueCallback Create = static c => new RuntimeTypes(c);

    private readonly Compilation _compilation;
    private readonly IAssemblySymbol? _runtime;

    private RuntimeTypes(Compilation compilation)
    {
        _compilation = compilation;
        if (compilation.AssemblyName == RuntimeAssembly) return;
        foreach (var reference in compilation.References)
            if (compilation.GetAssemblyOrModuleSymbol(reference) is IAssemblySymbol { Name: RuntimeAssembly } assembly)
            {
                _runtime = assembly;
                break;
            }
    }

    private const string RuntimeAssembly = "Hmm.Runtime";

    /// <summary>The look-up of <paramref name="compilation"/>, shared by every rule (one scan of its references).</summary>
    public static RuntimeTypes Of(Compilation compilation) => PerCompilation.GetValue(compilation, Create);

    /// <summary>The type named <paramref name="metadataName"/> of Hmm.Runtime, or null.</summary>
    public INamedTypeSymbol? Get(string metadataName)
        => _runtime != null ? _runtime.GetTypeByMetadataName(metadataName) : _compilation.GetTypeByMetadataName(metadataName);
}
