using Microsoft.CodeAnalysis;

namespace Hmm.Generators.Parsing;

/// <summary>Declaration checks shared by the generator (skip what fails) and the DSL-shape analyzer (report it), which links this file.</summary>
internal static class DeclarationRules
{
    /// <summary>An instance field or property of type KernelMutex named <paramref name="name"/>.</summary>
    internal static bool IsKernelMutexMember(INamedTypeSymbol type, string name)
    {
        foreach (var member in type.GetMembers(name))
        {
            var memberType = member switch
            {
                IFieldSymbol f when !f.IsStatic => f.Type,
                IPropertySymbol p when !p.IsStatic && p.GetMethod != null && p.Parameters.Length == 0 => p.Type,
                _ => null,
            };
            if (memberType?.ToDisplayString() == Hmm.Generators.KnownNames.KernelMutex) return true;
        }
        return false;
    }

    /// <summary>An instance field or readable property of a reference type named <paramref name="name"/>.</summary>
    internal static bool IsOwnerMember(INamedTypeSymbol type, string name)
    {
        foreach (var member in type.GetMembers(name))
        {
            var memberType = member switch
            {
                IFieldSymbol f when !f.IsStatic => f.Type,
                IPropertySymbol p when !p.IsStatic && p.GetMethod != null && p.Parameters.Length == 0 => p.Type,
                _ => null,
            };
            if (memberType is { IsReferenceType: true }) return true;
        }
        return false;
    }

    /// <summary>ChunkBytes must be a positive multiple of 2 MiB (memremap_pages' section granularity here).</summary>
    internal static bool IsValidChunk(long bytes) => bytes > 0 && bytes % (2L << 20) == 0;
}
