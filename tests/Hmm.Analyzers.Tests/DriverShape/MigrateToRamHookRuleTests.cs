using Hmm.Analyzers.DriverShape;
using Microsoft.CodeAnalysis.Testing;
using NUnit.Framework;
using static Hmm.Analyzers.Tests.DriverShape.DriverShapeVerifier;

namespace Hmm.Analyzers.Tests.DriverShape;

/// <summary>
/// [BeforeMigrateToRam]: its signature (HMM0004), one per driver (HMM0005), only where a
/// migrate_to_ram exists (HMM0009 without device memory, HMM0010 outside a driver, HMM0015 on
/// memory that is not device-private), silent on a correct declaration.
/// </summary>
public sealed class MigrateToRamHookRuleTests
{
    private const string Head = "[HmmDriver(\"m\")][DeviceMemory(DevicePageKind.Private)] partial class M { [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } ";

    private const string SharedMemory = """
        [DeviceMemory(DevicePageKind.{0}, ChunkBytes = 2L << 20)]
        public sealed partial class Mdevice
        {{
        }}

        """;

    [Test]
    public Task OwnPrivateMemory_WithTheHook_IsSilent()
        => VerifyAsync(Head + "[BeforeMigrateToRam] private bool Nap(in VmFault vmf) => true; }");

    [Test]
    public Task TheHook_BesideAnOnMigrateToRamReplacement_IsSilent()
        => VerifyAsync(Head + "[BeforeMigrateToRam] private bool Nap(in VmFault vmf) => true; [OnMigrateToRam] private VmFaultResult R(in VmFault vmf) => VmFaultResult.SigBus; }");

    [Test]
    public Task SharedPrivateMemory_WithTheHookOnTheFile_IsSilent()
        => VerifyAsync(string.Format(SharedMemory, "Private") + """
            [HmmDriver("file", Memory = nameof(Mdevice))]
            public sealed partial class File
            {
                public Mdevice Mdevice { get; } = new();
                [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) { }
                [BeforeMigrateToRam] private bool Nap(in VmFault vmf) => true;
            }
            """);

    [TestCase("[BeforeMigrateToRam] private void {|HMM0004:B|}(in VmFault vmf) { }")]
    [TestCase("[BeforeMigrateToRam] private bool {|HMM0004:B|}(VmFault vmf) => true;")]
    [TestCase("[BeforeMigrateToRam] private bool {|HMM0004:B|}(in VmFault vmf, bool retry) => true;")]
    [TestCase("[BeforeMigrateToRam] private static bool {|HMM0004:B|}(in VmFault vmf) => true;")]
    [TestCase("[BeforeMigrateToRam] private VmFaultResult {|HMM0004:B|}(in VmFault vmf) => VmFaultResult.Ok;")]
    public Task HMM0004_WrongSignature(string method) => VerifyAsync(Head + method + " }");

    [Test]
    public Task HMM0004_MessageShowsTheExpectedSignature()
        => VerifyAsync(Head + "[BeforeMigrateToRam] private long {|#0:B|}(in VmFault vmf) => 0; }",
            new DiagnosticResult(DriverShapeDescriptors.WrongSignature).WithLocation(0).WithArguments("B", "BeforeMigrateToRam", "bool M(in VmFault vmf)"));

    [Test]
    public Task HMM0005_Duplicate()
        => VerifyAsync(Head + "[BeforeMigrateToRam] private bool A(in VmFault vmf) => true; [BeforeMigrateToRam] private bool {|HMM0005:B|}(in VmFault vmf) => false; }");

    [Test]
    public Task HMM0009_WithoutDeviceMemory()
        => VerifyAsync("[HmmDriver(\"m\")] partial class M { [BeforeMigrateToRam] private bool {|HMM0009:B|}(in VmFault vmf) => true; }");

    [TestCase("class NotADriver { [BeforeMigrateToRam] private bool {|HMM0010:B|}(in VmFault vmf) => true; }")]
    [TestCase("[DeviceMemory(DevicePageKind.Private)] partial class Mem { [BeforeMigrateToRam] private bool {|HMM0010:B|}(in VmFault vmf) => true; }")]
    public Task HMM0010_OutsideADriver_OrOnTheDeviceLevelMemory(string code) => VerifyAsync(code);

    [TestCase("Coherent")]
    [TestCase("P2PDma")]
    public Task HMM0015_OwnMemoryWithoutMigrateToRam(string kind)
        => VerifyAsync("[HmmDriver(\"m\")][DeviceMemory(DevicePageKind." + kind + ")] partial class M { [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } [BeforeMigrateToRam] private bool {|HMM0015:B|}(in VmFault vmf) => true; }");

    [Test]
    public Task HMM0015_SharedCoherentMemory_MessageNamesTheKind()
        => VerifyAsync(string.Format(SharedMemory, "Coherent") + """
            [HmmDriver("file", Memory = nameof(Mdevice))]
            public sealed partial class File
            {
                public Mdevice Mdevice { get; } = new();
                [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) { }
                [BeforeMigrateToRam] private bool {|#0:Nap|}(in VmFault vmf) => true;
            }
            """,
            new DiagnosticResult(DriverShapeDescriptors.NoMigrateToRam).WithLocation(0).WithArguments("Nap", "File", "DevicePageKind.Coherent"));

    [Test]
    public Task HMM0015_DoesNotFlagOnMigrateToRam_OrOtherCallbacks_OnCoherentMemory()
        => VerifyAsync("[HmmDriver(\"m\")][DeviceMemory(DevicePageKind.Coherent)] partial class M { [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } [OnMigrateToRam] private VmFaultResult R(in VmFault vmf) => VmFaultResult.SigBus; [OnPageFree] private void F(ulong pfn) { } }");
}
