using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>
/// HMM1042 beyond vmf.Page: the other ways migrate_to_ram reaches the faulting (device-private)
/// page — <c>MigrateVma.FaultPage</c>, and the <c>Src</c> entries of a migration that collects
/// device-private pages only (<c>Flags = MigrateSelect.DevicePrivate</c>), decoded with
/// <c>&gt;&gt; MigratePfn.Shift</c> or <c>MigratePfn.ToPfn</c>.
/// </summary>
public sealed class CpuAccessSourceTests
{
    private const string Head = """
        class Gpu
        {
            private Machine _machine = null!;
            private long _sum;
            private ulong BackingOf(ulong devicePfn) => devicePfn - 0x100000;

            public VmFaultResult MigrateToRam(in VmFault vmf)
            {
                if (!SystemPages.TryAllocateLocked(_machine, 0, out ulong dpfn)) return VmFaultResult.Oom;

        """;

    private const string Tail = """

                return VmFaultResult.Ok;
            }

        """;

    private static string Migration(string flags) => "        using var args = new MigrateVma { Vma = null!, Start = 0, End = 4096, Src = new ulong[1], Dst = new ulong[1], Flags = MigrateSelect."
        + flags + ", PgmapOwner = this, FaultPage = vmf.Page };\n";

    private static Task Verify(string body, string helpers = "") => HmmVerifier.VerifyAsync(Head + body + Tail + helpers + "}\n");

    [Test]
    public Task Src_entry_of_a_private_migration_copied_by_the_cpu_fires() => Verify(Migration("DevicePrivate") + """
                HighMem.CopyPage(_machine, dpfn, {|HMM1042:args.Src[0] >> MigratePfn.Shift|});
        """);

    [Test]
    public Task Src_alias_decoded_with_ToPfn_fires() => Verify(Migration("DevicePrivate") + """
                var src = args.Src;
                ulong spfn = MigratePfn.ToPfn(src[0]) ?? 0;
                _sum += HighMem.Map(_machine, {|HMM1042:spfn|})[0];
        """);

    [Test]
    public Task Fault_page_read_back_from_the_migration_fires() => Verify(Migration("DevicePrivate") + """
                HighMem.CopyPage(_machine, dpfn, {|HMM1042:args.FaultPage!.Value|});
        """);

    [Test]
    public Task Src_pfn_two_helpers_deep_fires() => Verify(Migration("DevicePrivate") + """
                Save({|HMM1042:args.Src[0] >> MigratePfn.Shift|});
        """, """
            private void Save(ulong pfn) => Dump(pfn);
            private void Dump(ulong pfn) => _sum += HighMem.Map(_machine, pfn)[0];

        """);

    [Test]
    public Task Src_of_a_system_migration_is_silent() => Verify(Migration("System") + """
                HighMem.CopyPage(_machine, dpfn, args.Src[0] >> MigratePfn.Shift);
        """);

    [Test]
    public Task Backing_page_of_a_private_src_is_silent() => Verify(Migration("DevicePrivate") + """
                HighMem.CopyPage(_machine, dpfn, BackingOf(args.Src[0] >> MigratePfn.Shift));
        """);

    [Test]
    public Task Dst_entry_of_a_private_migration_is_silent() => Verify(Migration("DevicePrivate") + """
                _sum += HighMem.Map(_machine, args.Dst[0] >> MigratePfn.Shift)[0];
        """);

    [Test]
    public Task Dst_pfn_two_helpers_deep_is_silent() => Verify(Migration("DevicePrivate") + """
                Save(args.Dst[0] >> MigratePfn.Shift);
        """, """
            private void Save(ulong pfn) => Dump(pfn);
            private void Dump(ulong pfn) => _sum += HighMem.Map(_machine, pfn)[0];

        """);
}
