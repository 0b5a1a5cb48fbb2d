using Hmm.Analyzers.DriverShape;
using Microsoft.CodeAnalysis.Testing;
using NUnit.Framework;
using static Hmm.Analyzers.Tests.DriverShape.DriverShapeVerifier;

namespace Hmm.Analyzers.Tests.DriverShape;

/// <summary>Each HMM0xxx rule fires at its exact span on a wrong declaration and stays silent on the right one.</summary>
public sealed class DriverShapeAnalyzerTests
{
    private const string Correct = """
        [HmmDriver("gpu", UpdateLock = nameof(_lock), Owner = nameof(_owner), FaultTimeoutMs = 500)]
        [DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 2)]
        [FaultBuffer(Entries = 128, BatchSize = 64, Replay = ReplayPolicy.Once)]
        [P2pExporter]
        [P2pImporter]
        public sealed partial class Gpu
        {
            private readonly KernelMutex _lock = new("gpu.lock");
            private readonly object _owner = new();
            [OnInvalidate] private void Invalidate(in NotifierRange range) { }
            [OnMirrorFault] private void Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns) { }
            [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) { }
            [OnPageFree] private void Free(ulong pfn) { }
            [OnMigrateToRam] private VmFaultResult ToRam(in VmFault vmf) => VmFaultResult.SigBus;
            [FaultPolicy] private FaultAction Decide(in FaultRange fault) => FaultAction.MapInPlace;
            [OnRelease] private void Release() { }
            [OnP2pExport] private Errno Export(Vma vma, PciFunction importer, ulong start, ulong end, bool write) => Errno.Ok;
            [OnP2pImport] private Errno Import(P2pVmaImport import) => Errno.Ok;
        }
        """;

    [Test]
    public Task CorrectDriver_UsingEveryAttribute_IsSilent() => VerifyAsync(Correct);

    [Test]
    public Task ErrnoReturningMirrorFault_IsSilent()
        => VerifyAsync("""[HmmDriver("m")] partial class M { [OnMirrorFault] private Errno Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => Errno.Ok; }""");

    [Test]
    public Task MinimalDriver_IsSilent() => VerifyAsync("""[HmmDriver("m")] partial class M { }""");

    [Test]
    public Task HMM0001_NotPartial() => VerifyAsync("""[HmmDriver("m")] public sealed class {|HMM0001:M|} { }""");

    [Test]
    public Task HMM0002_Nested() => VerifyAsync("""public partial class Outer { [HmmDriver("m")] public partial class {|HMM0002:M|} { } }""");

    [Test]
    public Task HMM0003_Generic() => VerifyAsync("""[HmmDriver("m")] public partial class {|HMM0003:M|}<T> { }""");

    [TestCase("[OnInvalidate] private void {|HMM0004:I|}(NotifierRange range) { }")]
    [TestCase("[OnInvalidate] private static void {|HMM0004:I|}(in NotifierRange range) { }")]
    [TestCase("[OnMirrorFault] private bool {|HMM0004:F|}(HmmRange range, ReadOnlySpan<ulong> pfns) => true;")]
    [TestCase("[CopyPages] private void {|HMM0004:C|}(PageCopy[] copies) { }")]
    [TestCase("[OnPageFree] private void {|HMM0004:P|}(long pfn) { }")]
    [TestCase("[OnMigrateToRam] private VmFaultResult {|HMM0004:R|}(VmFault vmf) => default;")]
    [TestCase("[FaultPolicy] private FaultAction {|HMM0004:D|}<T>(in FaultRange f) => default;")]
    [TestCase("[OnRelease] private void {|HMM0004:R|}(bool now) { }")]
    [TestCase("[OnP2pImport] private void {|HMM0004:I|}(P2pVmaImport import) { }")]
    public Task HMM0004_WrongSignature(string method)
        => VerifyAsync("[HmmDriver(\"m\")][DeviceMemory(DevicePageKind.Private)][FaultBuffer][P2pImporter] partial class M { [CopyPages] private void Ok(ReadOnlySpan<PageCopy> c) { } " + method.Replace("[CopyPages] private void {|HMM0004:C|}", "[CopyPages] private void {|HMM0004:C|}") + " }");

    [Test]
    public Task HMM0004_MessageShowsTheExpectedSignature()
        => VerifyAsync(
            """[HmmDriver("m")] partial class M { [OnInvalidate] private void {|#0:I|}() { } }""",
            new DiagnosticResult(DriverShapeDescriptors.WrongSignature).WithLocation(0).WithArguments("I", "OnInvalidate", "void M(in NotifierRange range)"));

    [Test]
    public Task HMM0005_Duplicate()
        => VerifyAsync("""
            [HmmDriver("m")] partial class M
            {
                [OnInvalidate] private void A(in NotifierRange r) { }
                [OnInvalidate] private void {|HMM0005:B|}(in NotifierRange r) { }
            }
            """);

    [Test]
    public Task HMM0006_DeviceMemoryWithoutCopyPages()
        => VerifyAsync("""[HmmDriver("m")][{|HMM0006:DeviceMemory(DevicePageKind.Private)|}] partial class M { }""");

    [TestCase("\"_missing\"", "")]
    [TestCase("nameof(_spin)", "private readonly Hmm.Runtime.Locking.SpinLock _spin = new(\"s\");")]
    [TestCase("nameof(_static)", "private static readonly KernelMutex _static = new(\"s\");")]
    public Task HMM0007_UpdateLockNamesNoKernelMutex(string name, string member)
        => VerifyAsync("[HmmDriver(\"m\", UpdateLock = {|HMM0007:" + name + "|})] partial class M { private readonly KernelMutex _lock = new(\"l\"); " + member + " }");

    [Test]
    public Task HMM0007_ANamedKernelMutexProperty_IsSilent()
        => VerifyAsync("""[HmmDriver("m", UpdateLock = nameof(Lock))] partial class M { private KernelMutex Lock { get; } = new("l"); }""");

    [Test]
    public Task HMM0008_OwnerNamesNoReferenceMember()
        => VerifyAsync("""[HmmDriver("m", Owner = {|HMM0008:"_cookie"|})] partial class M { private readonly int _cookie = 1; }""");

    [TestCase("[CopyPages] private void {|HMM0009:C|}(ReadOnlySpan<PageCopy> c) { }")]
    [TestCase("[FaultPolicy] private FaultAction {|HMM0009:D|}(in FaultRange f) => default;")]
    [TestCase("[OnP2pExport] private Errno {|HMM0009:E|}(Vma v, PciFunction i, ulong s, ulong e, bool w) => Errno.Ok;")]
    public Task HMM0009_CallbackNeverCalled(string method)
        => VerifyAsync("[HmmDriver(\"m\")] partial class M { " + method + " }");

    [Test]
    public Task HMM0010_CallbackOutsideADriver()
        => VerifyAsync("""class NotADriver { [OnInvalidate] private void {|HMM0010:I|}(in NotifierRange r) { } }""");

    [TestCase("[HmmDriver(\"m\", FaultTimeoutMs = {|HMM0011:0|})] partial class M { }")]
    [TestCase("[HmmDriver({|HMM0011:\"\"|})] partial class M { }")]
    [TestCase("[HmmDriver(\"m\")][DeviceMemory(DevicePageKind.Private, ChunkBytes = {|HMM0011:4096|})] partial class M { [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } }")]
    [TestCase("[HmmDriver(\"m\")][DeviceMemory(DevicePageKind.Private, MaxChunks = {|HMM0011:0|})] partial class M { [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } }")]
    [TestCase("[HmmDriver(\"m\")][FaultBuffer(Entries = 16, BatchSize = {|HMM0011:32|})] partial class M { }")]
    [TestCase("[HmmDriver(\"m\", FaultBatchPages = {|HMM0011:0|})] partial class M { }")]
    [TestCase("[HmmDriver(\"m\", FaultBatchPages = {|HMM0011:513|})] partial class M { }")]
    [TestCase("[HmmDriver(\"m\")][DeviceMemory(DevicePageKind.Private, MaxChunks = 2, InitialChunks = {|HMM0011:3|})] partial class M { [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } }")]
    [TestCase("[HmmDriver(\"m\")][DeviceMemory(DevicePageKind.Private, InitialChunks = {|HMM0011:17|})] partial class M { [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } }")]
    [TestCase("[DeviceMemory(DevicePageKind.Private, InitialChunks = {|HMM0011:-1|})] partial class Mem { }")]
    // A bad limit is the one diagnostic: the initial chunks are not checked against it.
    [TestCase("[DeviceMemory(DevicePageKind.Private, MaxChunks = {|HMM0011:0|}, InitialChunks = 1)] partial class Mem { }")]
    public Task HMM0011_ArgumentOutOfRange(string code) => VerifyAsync(code);

    [Test]
    public Task HMM0011_FaultBatchPages_MessageShowsTheRange()
        => VerifyAsync("""[HmmDriver("m", FaultBatchPages = {|#0:1024|})] partial class M { }""",
            new DiagnosticResult(DriverShapeDescriptors.BadArgument).WithLocation(0).WithArguments("FaultBatchPages must be between 1 and 512 (was 1024)"));

    [Test]
    public Task DmirrorOptions_UsedCorrectly_AreSilent()
        => VerifyAsync("""
            [DeviceMemory(DevicePageKind.Private, MaxChunks = 2, InitialChunks = 2, SplitFolios = false, PageCounters = true, Configurable = true)]
            partial class Mem { }
            [HmmDriver("m", Memory = nameof(_mem), FaultBatchPages = 32, GenerateSnapshot = true)]
            partial class M { private readonly Mem _mem = new(); [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } }
            [HmmDriver("own", FaultBatchPages = 1)][DeviceMemory(DevicePageKind.Coherent, MaxChunks = 1, InitialChunks = 1, PageCounters = true)]
            partial class Own { [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } }
            """);

    [TestCase("[HmmDriver(\"m\", GenerateSnapshot = true)] partial class M { public int {|HMM0012:Snapshot|} => 0; }")]
    [TestCase("[HmmDriver(\"m\")][DeviceMemory(DevicePageKind.Private, PageCounters = true)] partial class M { [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } public int {|HMM0012:DeviceFreeListLengths|} => 0; }")]
    [TestCase("[DeviceMemory(DevicePageKind.Private, PageCounters = true)] partial class Mem { public long {|HMM0012:DevicePagesFreed|} => 0; }")]
    [TestCase("[HmmDriver(\"m\")][DeviceMemory(DevicePageKind.Coherent, Configurable = true)] partial class M { [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } public int {|HMM0012:DeviceKind|} => 0; }")]
    public Task HMM0012_NamesAnOptionGenerates(string code) => VerifyAsync(code);

    [Test]
    public Task HMM0012_OptionNames_AreFreeWhenTheOptionIsOff()
        => VerifyAsync("""
            [DeviceMemory(DevicePageKind.Private)] partial class Mem { public long DevicePagesFreed => 0; }
            [HmmDriver("m")] partial class M { public int Snapshot => 0; public long DevicePagesAllocated => 0; public int DeviceKind => 0; }
            """);

    [TestCase("public void {|HMM0012:Fault|}() { }")]
    [TestCase("public int {|HMM0012:Device|} => 0;")]
    [TestCase("private int {|HMM0012:__hmmNotifier|};")]
    public Task HMM0012_MemberClashesWithGeneratedOne(string member)
        => VerifyAsync("[HmmDriver(\"m\")] partial class M { " + member + " }");

    [Test]
    public Task HMM0012_DeviceMemoryNames_AreFreeWithoutDeviceMemory()
        => VerifyAsync("""[HmmDriver("m")] partial class M { public void MigrateToDevice() { } public int ServiceFaults => 0; }""");

    private const string SharedMemory = """
        [DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20)]
        public sealed partial class Mdevice
        {
            [OnPageFree] private void Free(ulong pfn) { }
            [OnMigrateToRam] private VmFaultResult ToRam(in VmFault vmf) => VmFaultResult.SigBus;
        }

        """;

    [Test]
    public Task SharedMemory_DriverAndDeviceClass_AreSilent()
        => VerifyAsync(SharedMemory + """
            [HmmDriver("dmirror", Memory = nameof(Mdevice))]
            public sealed partial class File
            {
                public Mdevice Mdevice { get; } = new();
                [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) { }
                [OnMigrated] private void Migrated(Hmm.Runtime.Migration.MigrateVma args) { }
                [AllocatePage] private bool Allocate(int order, bool toDevice, out ulong pfn) { pfn = 0; return false; }
                [OnMigrateToRam] private VmFaultResult ToRam(in VmFault vmf) => VmFaultResult.SigBus;
            }
            """);

    [TestCase("private readonly object _mem = new();")]
    [TestCase("private static Mdevice _mem = new();")]
    public Task HMM0013_MemoryNamesNoDeviceLevelMemory(string member)
        => VerifyAsync(SharedMemory + "[HmmDriver(\"m\", Memory = {|HMM0013:\"_mem\"|})] partial class M { " + member + " [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } }");

    [Test]
    public Task HMM0013_ADriverIsNotADeviceLevelMemory()
        => VerifyAsync("""
            [HmmDriver("other")][DeviceMemory(DevicePageKind.Private)] partial class Other { [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } }
            [HmmDriver("m", Memory = {|HMM0013:"_other"|})] partial class M { private readonly Other _other = new(); }
            """);

    [Test]
    public Task HMM0014_OwnAndSharedMemory()
        => VerifyAsync(SharedMemory + """
            [HmmDriver("m", Memory = {|HMM0014:nameof(_mem)|})]
            [DeviceMemory(DevicePageKind.Private)]
            partial class M { private readonly Mdevice _mem = new(); [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } }
            """);

    [Test]
    public Task HMM0006_SharedMemoryWithoutCopyPages()
        => VerifyAsync(SharedMemory + """[HmmDriver("m", Memory = {|HMM0006:nameof(_mem)|})] partial class M { private readonly Mdevice _mem = new(); }""");

    [TestCase("[OnMigrated] private void {|HMM0009:M1|}(Hmm.Runtime.Migration.MigrateVma a) { }")]
    [TestCase("[AllocatePage] private bool {|HMM0009:A|}(int o, bool d, out ulong p) { p = 0; return false; }")]
    public Task HMM0009_MigrationHooksWithoutMemory(string method)
        => VerifyAsync("[HmmDriver(\"m\")] partial class M { " + method + " }");

    [Test]
    public Task HMM0004_AllocatePageShowsItsSignature()
        => VerifyAsync("""[HmmDriver("m")][DeviceMemory(DevicePageKind.Private)] partial class M { [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } [AllocatePage] private bool {|HMM0004:A|}(int order, out ulong pfn) { pfn = 0; return false; } }""");

    [TestCase("[DeviceMemory(DevicePageKind.Private)] public sealed class {|HMM0001:Mem|} { }")]
    [TestCase("[DeviceMemory(DevicePageKind.Private)] partial class Mem { [OnInvalidate] private void {|HMM0010:I|}(in NotifierRange r) { } }")]
    [TestCase("[DeviceMemory(DevicePageKind.Private)] partial class Mem { [OnPageFree] private void {|HMM0004:F|}(long pfn) { } }")]
    [TestCase("[DeviceMemory(DevicePageKind.Private)] partial class Mem { public int {|HMM0012:PgmapOwner|} => 0; }")]
    [TestCase("[DeviceMemory(DevicePageKind.Private, MaxChunks = {|HMM0011:0|})] partial class Mem { }")]
    public Task DeviceLevelMemoryClass_Shape(string code) => VerifyAsync(code);
}
