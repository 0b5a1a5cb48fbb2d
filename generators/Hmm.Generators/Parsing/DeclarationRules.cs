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

    /// <summary>
    /// An instance field or readable property named <paramref name="name"/> whose type is a device-level
    /// memory class: a class carrying [DeviceMemory] and no [HmmDriver] (HmmDriver.Memory).
    /// </summary>
    internal static bool IsMemoryMember(INamedTypeSymbol type, string name, out INamedTypeSymbol? memoryType)
    {
        memoryType = null;
        foreach (var member in type.GetMembers(name))
        {
            var memberType = member switch
            {
                IFieldSymbol f when !f.IsStatic => f.Type,
                IPropertySymbol p when !p.IsStatic && p.GetMethod != null && p.Parameters.Length == 0 => p.Type,
                _ => null,
            };
            if (memberType is INamedTypeSymbol named && IsMemoryClass(named))
            {
                memoryType = named;
                return true;
            }
        }
        return false;
    }

    /// <summary>A class carrying [DeviceMemory] but not [HmmDriver]: device memory shared by the drivers that name it.</summary>
    internal static bool IsMemoryClass(INamedTypeSymbol type)
    {
        bool memory = false;
        foreach (var a in type.GetAttributes())
        {
            string? name = a.AttributeClass?.ToDisplayString();
            if (name == Hmm.Generators.KnownNames.HmmDriverAttribute) return false;
            memory |= name == Hmm.Generators.KnownNames.DeviceMemoryAttribute;
        }
        return memory && type.TypeKind == TypeKind.Class;
    }

    /// <summary>ChunkBytes must be a positive multiple of 2 MiB (memremap_pages' section granularity here).</summary>
    internal static bool IsValidChunk(long bytes) => bytes > 0 && bytes % (2L << 20) == 0;

    /// <summary>HmmDriver.FaultBatchPages: one page up to a 2 MiB piece (the per-thread ranges are cached per size up to 512).</summary>
    internal static bool IsValidFaultBatch(int pages) => pages is >= 1 and <= 512;
}
