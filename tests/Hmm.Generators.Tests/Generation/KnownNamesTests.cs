using System.Reflection;
using Hmm.Dsl;
using Hmm.Generators.Parsing;
using NUnit.Framework;

namespace Hmm.Generators.Tests.Generation;

/// <summary>The generator knows the runtime only by metadata name: every name must be a real runtime type.</summary>
public sealed class KnownNamesTests
{
    [Test]
    public void EveryKnownName_IsTheRuntimesType()
    {
        Assert.Multiple(() =>
        {
            Assert.That(typeof(HmmDriverAttribute).FullName, Is.EqualTo(KnownNames.HmmDriverAttribute));
            Assert.That(typeof(DeviceMemoryAttribute).FullName, Is.EqualTo(KnownNames.DeviceMemoryAttribute));
            Assert.That(typeof(FaultBufferAttribute).FullName, Is.EqualTo(KnownNames.FaultBufferAttribute));
            Assert.That(typeof(P2pExporterAttribute).FullName, Is.EqualTo(KnownNames.P2pExporterAttribute));
            Assert.That(typeof(P2pImporterAttribute).FullName, Is.EqualTo(KnownNames.P2pImporterAttribute));
            Assert.That(typeof(OnInvalidateAttribute).FullName, Is.EqualTo(KnownNames.OnInvalidateAttribute));
            Assert.That(typeof(OnMirrorFaultAttribute).FullName, Is.EqualTo(KnownNames.OnMirrorFaultAttribute));
            Assert.That(typeof(CopyPagesAttribute).FullName, Is.EqualTo(KnownNames.CopyPagesAttribute));
            Assert.That(typeof(OnPageFreeAttribute).FullName, Is.EqualTo(KnownNames.OnPageFreeAttribute));
            Assert.That(typeof(OnMigrateToRamAttribute).FullName, Is.EqualTo(KnownNames.OnMigrateToRamAttribute));
            Assert.That(typeof(FaultPolicyAttribute).FullName, Is.EqualTo(KnownNames.FaultPolicyAttribute));
            Assert.That(typeof(OnReleaseAttribute).FullName, Is.EqualTo(KnownNames.OnReleaseAttribute));
            Assert.That(typeof(OnP2pExportAttribute).FullName, Is.EqualTo(KnownNames.OnP2pExportAttribute));
            Assert.That(typeof(OnP2pImportAttribute).FullName, Is.EqualTo(KnownNames.OnP2pImportAttribute));
            Assert.That(typeof(OnMigratedAttribute).FullName, Is.EqualTo(KnownNames.OnMigratedAttribute));
            Assert.That(typeof(AllocatePageAttribute).FullName, Is.EqualTo(KnownNames.AllocatePageAttribute));
            Assert.That(typeof(BeforeMigrateToRamAttribute).FullName, Is.EqualTo(KnownNames.BeforeMigrateToRamAttribute));
            Assert.That(typeof(IDeviceMemoryUser).FullName, Is.EqualTo(KnownNames.DeviceMemoryUser));
            Assert.That(typeof(Hmm.Runtime.Locking.KernelMutex).FullName, Is.EqualTo(KnownNames.KernelMutex));
        });
    }

    [Test]
    public void EveryCallbackAttribute_HasASignature_WhoseTypesExistInTheRuntime()
    {
        var runtime = typeof(HmmDriverAttribute).Assembly;
        var callbackAttributes = runtime.GetTypes().Where(t => t.Namespace == "Hmm.Dsl" && t.IsSubclassOf(typeof(Attribute))
            && t.GetCustomAttribute<AttributeUsageAttribute>()!.ValidOn == AttributeTargets.Method && t.Name.StartsWith("On", StringComparison.Ordinal) || t == typeof(CopyPagesAttribute) || t == typeof(FaultPolicyAttribute) || t == typeof(AllocatePageAttribute) || t == typeof(BeforeMigrateToRamAttribute));
        Assert.That(CallbackSignatures.All.Select(s => s.AttributeMetadataName), Is.EquivalentTo(callbackAttributes.Select(t => t.FullName)));
        foreach (var signature in CallbackSignatures.All)
            foreach (var type in signature.Parameters.Select(p => p.Type).Append(signature.Returns).Where(t => t.StartsWith("global::Hmm", StringComparison.Ordinal)))
                Assert.That(runtime.GetType(type["global::".Length..]), Is.Not.Null, $"{signature.ShortName}: {type}");
    }
}
