using Hmm.Generators.Tests.Support;
using NUnit.Framework;

namespace Hmm.Generators.Tests.Generation;

/// <summary>The generator reports nothing and never crashes: what it cannot understand gets no code (the analyzer says why).</summary>
public sealed class SkipTests
{
    [TestCase("[HmmDriver(\"m\")] public sealed class M { }", TestName = "NotPartial")]
    [TestCase("public partial class O { [HmmDriver(\"m\")] public partial class M { } }", TestName = "Nested")]
    [TestCase("[HmmDriver(\"m\")] public partial class M<T> { }", TestName = "Generic")]
    [TestCase("[HmmDriver(\"m\", UpdateLock = \"_nothing\")] public partial class M { }", TestName = "UpdateLockNamesNothing")]
    [TestCase("[HmmDriver(\"m\", Owner = \"_n\")] public partial class M { private int _n; }", TestName = "OwnerNotAReference")]
    [TestCase("[HmmDriver(\"m\", FaultTimeoutMs = -1)] public partial class M { }", TestName = "BadTimeout")]
    [TestCase("[HmmDriver(\"m\")][DeviceMemory(DevicePageKind.Private, ChunkBytes = 4096)] public partial class M { }", TestName = "BadChunk")]
    [TestCase("[HmmDriver(\"m\")] public partial class M { public void Fault() { } }", TestName = "ReservedName")]
    [TestCase("[HmmDriver(\"m\", Memory = \"_m\")] public partial class M { private readonly object _m = new(); }", TestName = "MemoryNamesNoDeviceLevelMemory")]
    [TestCase("[HmmDriver(\"m\", Memory = \"_m\")][DeviceMemory(DevicePageKind.Private)] public partial class M { private readonly M _m = null!; }", TestName = "MemoryNamesADriver")]
    [TestCase("[DeviceMemory(DevicePageKind.Private)] public sealed class Mem { }", TestName = "DeviceLevelMemoryNotPartial")]
    [TestCase("[DeviceMemory(DevicePageKind.Private)] public partial class Mem { public object PgmapOwner => this; }", TestName = "DeviceLevelMemoryReservedName")]
    [TestCase("[HmmDriver(\"m\", FaultBatchPages = 0)] public partial class M { }", TestName = "FaultBatchPagesZero")]
    [TestCase("[HmmDriver(\"m\", FaultBatchPages = 513)] public partial class M { }", TestName = "FaultBatchPagesOver512")]
    [TestCase("[HmmDriver(\"m\", GenerateSnapshot = true)] public partial class M { public int Snapshot; }", TestName = "SnapshotReservedWhenGenerated")]
    [TestCase("[DeviceMemory(DevicePageKind.Private, MaxChunks = 2, InitialChunks = 3)] public partial class Mem { }", TestName = "InitialChunksOverMaxChunks")]
    [TestCase("[DeviceMemory(DevicePageKind.Private, InitialChunks = -1)] public partial class Mem { }", TestName = "InitialChunksNegative")]
    [TestCase("[DeviceMemory(DevicePageKind.Private, PageCounters = true)] public partial class Mem { public long DevicePagesFreed => 0; }", TestName = "PageCounterReservedWhenGenerated")]
    [TestCase("[DeviceMemory(DevicePageKind.Private, Configurable = true)] public partial class Mem { public void ConfigureDeviceMemory() { } }", TestName = "ConfigureReservedWhenGenerated")]
    public void ADeclarationItCannotImplement_GetsNoCode_AndNoGeneratorDiagnostic(string source)
    {
        var (result, diagnostics) = GeneratorHarness.Run(source);
        Assert.That(result.Results.Single().Exception, Is.Null);
        Assert.That(result.Results.Single().Diagnostics, Is.Empty);
        Assert.That(result.Results.Single().GeneratedSources, Is.Empty);
        Assert.That(diagnostics.Where(d => d.Location.SourceTree?.FilePath.EndsWith(".g.cs", StringComparison.Ordinal) == true), Is.Empty);
    }

    [Test]
    public void AWrongCallback_IsLeftOut_AndTheRestCompiles()
    {
        var (result, diagnostics) = GeneratorHarness.Run("""
            [HmmDriver("m")] public partial class M
            {
                [OnInvalidate] private void Wrong(NotifierRange r) { }
                [OnMirrorFault] private void Map(HmmRange r, ReadOnlySpan<ulong> p) { }
            }
            """);
        Assert.That(diagnostics, Is.Empty);
        string mirror = result.Results.Single().GeneratedSources.Single().SourceText.ToString();
        Assert.That(mirror, Does.Contain("this.Map(range, range.HmmPfns);"));
        Assert.That(mirror, Does.Not.Contain("this.Wrong("));
    }

    [Test]
    public void DeviceMemoryWithoutCopyPages_GeneratesTheMirrorOnly()
    {
        var (result, diagnostics) = GeneratorHarness.Run("[HmmDriver(\"m\")][DeviceMemory(DevicePageKind.Private)] public partial class M { }");
        Assert.That(diagnostics, Is.Empty);
        Assert.That(result.Results.Single().GeneratedSources.Select(s => s.HintName), Is.EqualTo(new[] { "M.Mirror.g.cs" }));
    }

    [Test]
    public void TwoDriversInOneCompilation_GetDistinctHintNames()
    {
        var (result, diagnostics) = GeneratorHarness.Run(
            "namespace A { [HmmDriver(\"a\")] public partial class D { } }",
            "namespace B { [HmmDriver(\"b\")] public partial class D { } }");
        Assert.That(diagnostics, Is.Empty);
        Assert.That(result.Results.Single().GeneratedSources.Select(s => s.HintName), Is.EquivalentTo(new[] { "A.D.Mirror.g.cs", "B.D.Mirror.g.cs" }));
    }

    [Test]
    public void OwnAndSharedMemory_GetsNoDriverCode_ButTheSharedMemoryIsStillGenerated()
    {
        var (result, diagnostics) = GeneratorHarness.Run("""
            [DeviceMemory(DevicePageKind.Private)] public partial class Mem { }
            [HmmDriver("m", Memory = nameof(_mem))][DeviceMemory(DevicePageKind.Private)]
            public partial class M { private readonly Mem _mem = new(); [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } }
            """);
        Assert.That(diagnostics, Is.Empty);
        Assert.That(result.Results.Single().GeneratedSources.Select(s => s.HintName), Is.EqualTo(new[] { "Mem.DeviceMemory.g.cs" }));
    }

    [Test]
    public void SharedMemoryWithoutCopyPages_GeneratesTheMirrorOnly()
    {
        var (result, diagnostics) = GeneratorHarness.Run("""
            [DeviceMemory(DevicePageKind.Private)] public partial class Mem { }
            [HmmDriver("m", Memory = nameof(_mem))] public partial class M { private readonly Mem _mem = new(); }
            """);
        Assert.That(diagnostics, Is.Empty);
        Assert.That(result.Results.Single().GeneratedSources.Select(s => s.HintName), Is.EquivalentTo(new[] { "M.Mirror.g.cs", "Mem.DeviceMemory.g.cs" }));
    }

    [Test]
    public void OptionNames_AreReservedOnlyWhenTheOptionIsOn()
    {
        var (result, diagnostics) = GeneratorHarness.Run("""
            [DeviceMemory(DevicePageKind.Private)] public partial class Mem { public long DevicePagesFreed => 0; }
            [HmmDriver("m", Memory = nameof(_mem))] public partial class M
            {
                private readonly Mem _mem = new();
                public int Snapshot() => 0;
                [CopyPages] void C(ReadOnlySpan<PageCopy> c) { }
            }
            """);
        Assert.That(diagnostics, Is.Empty);
        Assert.That(result.Results.Single().GeneratedSources.Select(s => s.HintName), Is.EquivalentTo(new[] { "M.Mirror.g.cs", "M.Migration.g.cs", "Mem.DeviceMemory.g.cs" }));
    }

    [Test]
    public void InitialChunksOnADriversOwnMemory_AreHotAddedByAttach_BeforeTheNotifierGoesIn()
    {
        var (result, diagnostics) = GeneratorHarness.Run("""
            [HmmDriver("m")][DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, InitialChunks = 2)]
            public partial class M { [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } }
            """);
        Assert.That(diagnostics, Is.Empty);
        var sources = result.Results.Single().GeneratedSources;
        string mirror = sources.Single(s => s.HintName == "M.Mirror.g.cs").SourceText.ToString();
        string attach = mirror[mirror.IndexOf("public global::Hmm.Runtime.Errno Attach(", StringComparison.Ordinal)..];
        Assert.That(attach.IndexOf("if (!__HmmHotAddInitial()) return global::Hmm.Runtime.Errno.ENOMEM;", StringComparison.Ordinal),
            Is.GreaterThan(0).And.LessThan(attach.IndexOf("notifier.Insert(", StringComparison.Ordinal)));
        string memory = sources.Single(s => s.HintName == "M.DeviceMemory.g.cs").SourceText.ToString();
        Assert.That(memory, Does.Contain("while (global::System.Threading.Volatile.Read(ref __hmmChunkCount) < 2)"));
        // SplitFolios is on by default: the allocators still split a folio for a base page.
        Assert.That(memory, Does.Contain("ulong block = __hmmFreeLarge[--__hmmFreeLargeCount];"));
    }
}
