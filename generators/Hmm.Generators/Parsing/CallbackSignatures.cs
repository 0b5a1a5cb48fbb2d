using Hmm.Generators.Models;
using Microsoft.CodeAnalysis;

namespace Hmm.Generators.Parsing;

/// <summary>
/// The one table of callback attributes and the signature each requires. The generator uses it
/// to decide what it understands; the DSL-shape analyzer (which links this file) uses it to say
/// what is wrong and to show the expected signature in its message.
/// </summary>
internal static class CallbackSignatures
{
    /// <summary>One required signature: the return type and parameters, as fully qualified display strings.</summary>
    internal sealed class Signature(CallbackKind kind, string attribute, string returns, string text, params (RefKind RefKind, string Type)[] parameters)
    {
        public CallbackKind Kind { get; } = kind;
        public string AttributeMetadataName { get; } = attribute;
        public string Returns { get; } = returns;

        /// <summary>A second accepted return type (<c>[OnMirrorFault]</c> may return an errno that stops the fault), or null.</summary>
        public string? AlternativeReturns { get; set; }
        public (RefKind RefKind, string Type)[] Parameters { get; } = parameters;

        /// <summary>The signature as a user writes it (shown in HMM0005's message and in the attribute docs).</summary>
        public string Text { get; } = text;

        /// <summary>The attribute's short name without "Attribute".</summary>
        public string ShortName => AttributeMetadataName.Substring(AttributeMetadataName.LastIndexOf('.') + 1).Replace("Attribute", "");
    }

    private const string Span = "global::System.ReadOnlySpan";

    /// <summary>The errno type, as a fully qualified display string.</summary>
    public const string ErrnoType = "global::Hmm.Runtime.Errno";

    /// <summary>Every callback, in <see cref="CallbackKind"/> order.</summary>
    public static readonly Signature[] All =
    [
        new(CallbackKind.OnInvalidate, KnownNames.OnInvalidateAttribute, "void",
            "void M(in NotifierRange range)", (RefKind.In, "global::Hmm.Runtime.Mm.NotifierRange")),
        new(CallbackKind.OnMirrorFault, KnownNames.OnMirrorFaultAttribute, "void",
            "void M(HmmRange range, ReadOnlySpan<ulong> hmmPfns) or Errno M(HmmRange range, ReadOnlySpan<ulong> hmmPfns)", (RefKind.None, "global::Hmm.Runtime.Mirror.HmmRange"), (RefKind.None, Span + "<ulong>"))
        { AlternativeReturns = ErrnoType },
        new(CallbackKind.CopyPages, KnownNames.CopyPagesAttribute, "void",
            "void M(ReadOnlySpan<PageCopy> copies)", (RefKind.None, Span + "<global::Hmm.Runtime.Devices.PageCopy>")),
        new(CallbackKind.OnPageFree, KnownNames.OnPageFreeAttribute, "void",
            "void M(ulong pfn)", (RefKind.None, "ulong")),
        new(CallbackKind.OnMigrateToRam, KnownNames.OnMigrateToRamAttribute, "global::Hmm.Runtime.DeviceMemory.VmFaultResult",
            "VmFaultResult M(in VmFault vmf)", (RefKind.In, "global::Hmm.Runtime.DeviceMemory.VmFault")),
        new(CallbackKind.FaultPolicy, KnownNames.FaultPolicyAttribute, "global::Hmm.Dsl.FaultAction",
            "FaultAction M(in FaultRange fault)", (RefKind.In, "global::Hmm.Runtime.Devices.FaultRange")),
        new(CallbackKind.OnRelease, KnownNames.OnReleaseAttribute, "void",
            "void M()"),
        new(CallbackKind.OnP2pExport, KnownNames.OnP2pExportAttribute, "global::Hmm.Runtime.Errno",
            "Errno M(Vma vma, PciFunction importer, ulong start, ulong end, bool write)",
            (RefKind.None, "global::Hmm.Runtime.Mm.Vma"), (RefKind.None, "global::Hmm.Runtime.Pci.PciFunction"),
            (RefKind.None, "ulong"), (RefKind.None, "ulong"), (RefKind.None, "bool")),
        new(CallbackKind.OnP2pImport, KnownNames.OnP2pImportAttribute, "global::Hmm.Runtime.Errno",
            "Errno M(P2pVmaImport import)", (RefKind.None, "global::Hmm.Runtime.Pci.P2pVmaImport")),
        new(CallbackKind.OnMigrated, KnownNames.OnMigratedAttribute, "void",
            "void M(MigrateVma args)", (RefKind.None, "global::Hmm.Runtime.Migration.MigrateVma")),
        new(CallbackKind.AllocatePage, KnownNames.AllocatePageAttribute, "bool",
            "bool M(int order, bool toDevice, out ulong pfn)", (RefKind.None, "int"), (RefKind.None, "bool"), (RefKind.Out, "ulong")),
        new(CallbackKind.BeforeMigrateToRam, KnownNames.BeforeMigrateToRamAttribute, "bool",
            "bool M(in VmFault vmf)", (RefKind.In, "global::Hmm.Runtime.DeviceMemory.VmFault")),
    ];

    /// <summary>The callback kind of a callback attribute class, by metadata name.</summary>
    public static Signature? ForAttribute(INamedTypeSymbol? attributeClass)
    {
        if (attributeClass == null || attributeClass.ContainingNamespace?.ToDisplayString() != "Hmm.Dsl") return null;
        string name = "Hmm.Dsl." + attributeClass.MetadataName;
        foreach (var s in All)
            if (s.AttributeMetadataName == name) return s;
        return null;
    }

    /// <summary>Whether <paramref name="method"/> is an instance, non-generic method of exactly the required shape.</summary>
    public static bool Matches(Signature signature, IMethodSymbol method)
    {
        if (method.IsStatic || method.IsGenericMethod || method.MethodKind != MethodKind.Ordinary) return false;
        if (method.ReturnsByRef || method.ReturnsByRefReadonly) return false;
        string returns = method.ReturnType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
        if (returns != signature.Returns && returns != signature.AlternativeReturns) return false;
        if (method.Parameters.Length != signature.Parameters.Length) return false;
        for (int i = 0; i < method.Parameters.Length; i++)
        {
            var p = method.Parameters[i];
            var expected = signature.Parameters[i];
            if (p.RefKind != expected.RefKind) return false;
            if (p.Type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat) != expected.Type) return false;
        }
        return true;
    }
}
