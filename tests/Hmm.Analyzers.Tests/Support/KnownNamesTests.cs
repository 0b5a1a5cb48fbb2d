using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Support;

/// <summary>The analyzers know the runtime only by metadata name: each name must resolve to the real type.</summary>
public sealed class KnownNamesTests
{
    [Test]
    public void Every_known_name_resolves_in_the_runtime()
    {
        var compilation = CSharpCompilation.Create("probe", references: OfflineReferences.All);
        foreach (var name in KnownNames.AllRuntimeTypes.Concat(Hmm.Analyzers.Rules.DevicePageRules.AllRuntimeTypes).Concat(Hmm.Analyzers.Rules.MmuNotifierRules.AllRuntimeTypes))
            Assert.That(compilation.GetTypeByMetadataName(name), Is.Not.Null, name);
        var space = compilation.GetTypeByMetadataName(KnownNames.AddressSpace)!;
        Assert.That(space.GetMembers("MmapLock"), Has.Length.EqualTo(1), KnownNames.MmapLockClass);
    }

    [Test]
    public void Every_contract_attribute_of_the_runtime_is_known()
    {
        var compilation = CSharpCompilation.Create("probe", references: OfflineReferences.All);
        var dsl = compilation.GetTypeByMetadataName(KnownNames.MayBlock)!.ContainingNamespace;
        var known = new HashSet<string>(KnownNames.AllRuntimeTypes.Concat(Hmm.Analyzers.Rules.DevicePageRules.AllRuntimeTypes).Concat(Hmm.Analyzers.Rules.MmuNotifierRules.AllRuntimeTypes));
        string[] dslOnly = ["HmmDriverAttribute", "DeviceMemoryAttribute", "FaultBufferAttribute", "P2pExporterAttribute", "P2pImporterAttribute",
            "CopyPagesAttribute", "FaultPolicyAttribute", "OnP2pExportAttribute", "OnP2pImportAttribute", "OnMigratedAttribute", "AllocatePageAttribute",
            "BeforeMigrateToRamAttribute"];
        foreach (var t in dsl.GetTypeMembers())
            if (t.Name.EndsWith("Attribute", StringComparison.Ordinal) && !dslOnly.Contains(t.Name))
                Assert.That(known, Does.Contain("Hmm.Dsl." + t.Name), "contract attribute without a KnownNames entry");
    }
}
