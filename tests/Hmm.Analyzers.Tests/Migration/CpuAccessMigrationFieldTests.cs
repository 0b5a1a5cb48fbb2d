using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>
/// HMM1042 for migrations kept in a field (or property) of the driver and read back in another
/// method: migrate_to_ram stores its device-private-only migration, a later step lets the CPU read
/// a <c>Src</c> entry's page (itself, through a helper the pfn or the migration is handed to, two
/// deep). A field only ever holding a system migration, a field whose <c>Dst</c> is read, or a
/// translated pfn stay silent.
/// </summary>
public sealed class CpuAccessMigrationFieldTests
{
    private const string Head = """
        class Gpu
        {
            private Machine _machine = null!;
            private long _sum;
            private ulong _dpfn;
            private MigrateVma? _pending;
            private MigrateVma? _sys;
            private MigrateVma? Current { get; set; }
            private ulong BackingOf(ulong devicePfn) => devicePfn - 0x100000;

            public VmFaultResult MigrateToRam(in VmFault vmf)
            {
                _pending = new MigrateVma { Vma = null!, Start = 0, End = 4096, Src = new ulong[1], Dst = new ulong[1], Flags = MigrateSelect.DevicePrivate, PgmapOwner = this, FaultPage = vmf.Page };
                Current = _pending;
                _sys = new MigrateVma { Vma = null!, Start = 0, End = 4096, Src = new ulong[1], Dst = new ulong[1], Flags = MigrateSelect.System };
                return VmFaultResult.Ok;
            }

            private void Dump(ulong pfn) => _sum += HighMem.Map(_machine, pfn)[0];
            private void Finish(MigrateVma m) => CopyAll(m);
            private void CopyAll(MigrateVma m) => HighMem.CopyPage(_machine, _dpfn, m.Src[0] >> MigratePfn.Shift);

        """;

    private static Task Verify(string members) => HmmVerifier.VerifyAsync(Head + members + "}\n");

    // ---- fire ---------------------------------------------------------------------------------------

    [Test]
    public Task Cpu_copy_of_a_src_page_read_back_from_the_field_fires() => Verify("""
            public void CopyOut() => HighMem.CopyPage(_machine, _dpfn, {|HMM1042:_pending!.Src[0] >> MigratePfn.Shift|});

        """);

    [Test]
    public Task Src_pfn_of_the_field_handed_to_a_mapping_helper_fires() => Verify("""
            public void Inspect()
            {
                ulong spfn = MigratePfn.ToPfn(_pending!.Src[0]) ?? 0;
                Dump({|HMM1042:spfn|});
            }

        """);

    [Test]
    public Task Field_migration_handed_two_helpers_deep_fires() => Verify("""
            public void Complete() => Finish({|HMM1042:_pending|}!);

        """);

    [Test]
    public Task Migration_kept_in_a_property_fires() => Verify("""
            public void CopyOut()
            {
                var src = Current!.Src;
                _sum += HighMem.Map(_machine, {|HMM1042:src[0] >> MigratePfn.Shift|})[0];
            }

        """);

    // ---- silent -------------------------------------------------------------------------------------

    [Test]
    public Task Field_holding_a_system_migration_is_silent() => Verify("""
            public void CopyOut() => HighMem.CopyPage(_machine, _dpfn, _sys!.Src[0] >> MigratePfn.Shift);
            public void Complete() => Finish(_sys!);

        """);

    [Test]
    public Task Dst_of_the_field_read_by_the_cpu_is_silent() => Verify("""
            public void CopyOut() => HighMem.CopyPage(_machine, _dpfn, _pending!.Dst[0] >> MigratePfn.Shift);

        """);

    [Test]
    public Task Translated_src_pfn_of_the_field_is_silent() => Verify("""
            public void CopyOut() => HighMem.CopyPage(_machine, _dpfn, BackingOf(_pending!.Src[0] >> MigratePfn.Shift));

        """);
}
