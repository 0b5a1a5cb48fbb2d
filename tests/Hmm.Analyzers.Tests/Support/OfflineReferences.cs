using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Testing;

namespace Hmm.Analyzers.Tests.Support;

/// <summary>
/// The references every analyzer and code-fix test compiles against, without any download at
/// test time: <c>ReferenceAssemblies.Net.*</c> would fetch a targeting pack from NuGet, so the
/// framework comes from Basic.Reference.Assemblies.Net100 and the runtime from its built assembly.
/// </summary>
internal static class OfflineReferences
{
    /// <summary>A reference-assembly set that names net10.0 but resolves no package.</summary>
    public static ReferenceAssemblies Framework { get; } = new("net10.0");

    /// <summary>The .NET 10 reference assemblies plus Hmm.Runtime.</summary>
    public static ImmutableArray<MetadataReference> All { get; } =
        [.. Basic.Reference.Assemblies.Net100.References.All,
         MetadataReference.CreateFromFile(typeof(Hmm.Runtime.Mm.Machine).Assembly.Location)];
}
