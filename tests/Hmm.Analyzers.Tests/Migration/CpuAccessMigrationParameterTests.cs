using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>
/// HMM1042 across methods for migrations: migrate_to_ram sets up its device-private-only migration
/// and hands it to a helper, which (itself, or one or two helpers further down) lets the CPU read a
/// <c>Src</c> entry's page. Reported at the argument handing the migration over; the same helpers
/// given a system migration, or reading only <c>Dst</c> or a translated pfn, stay silent.
/// </summary>
public sealed class CpuAccessMigrationParameterTests
{
    private const string Head = """
        class Gpu
        {
            private Machine _machine = null!;
            private long _sum;
            private ulong _dpfn;
            private ulong BackingOf(ulong devicePfn) => devicePfn - 0x100000;

            public VmFaultResult MigrateToRam(in VmFault vmf)
            {

        """;

    private const string Tail = """

                return VmFaultResult.Ok;
            }

        """;

    private static string Migration(string flags) => "        using var args = new MigrateVma { Vma = null!, Start = 0, End = 4096, Src = new ulong[1], Dst = new ulong[1], Flags = MigrateSelect."
        + flags + ", PgmapOwner = this, FaultPage = vmf.Page };\n";

    private static Task Verify(string body, string helpers) => HmmVerifier.VerifyAsync(Head + body + Tail + helpers + "}\n");

    // ---- fire ---------------------------------------------------------------------------------------

    [Test]
    public Task Helper_copying_a_src_page_by_cpu_fires() => Verify(Migration("DevicePrivate") + """
                CopyBack({|HMM1042:args|});
        """, """
            private void CopyBack(MigrateVma m) => HighMem.CopyPage(_machine, _dpfn, m.Src[0] >> MigratePfn.Shift);

        """);

    [Test]
    public Task Migration_handed_on_two_helpers_deep_fires() => Verify(Migration("DevicePrivate") + """
                Finish({|HMM1042:args|});
        """, """
            private void Finish(MigrateVma m) => CopyAll(m);
            private void CopyAll(MigrateVma m)
            {
                var src = m.Src;
                ulong spfn = MigratePfn.ToPfn(src[0]) ?? 0;
                _sum += HighMem.Map(_machine, spfn)[0];
            }

        """);

    [Test]
    public Task Src_pfn_of_the_migration_handed_to_a_mapping_helper_fires() => Verify(Migration("DevicePrivate") + """
                Pull({|HMM1042:args|});
        """, """
            private void Pull(MigrateVma m) => Save(m.Src[0] >> MigratePfn.Shift);
            private void Save(ulong pfn) => Dump(pfn);
            private void Dump(ulong pfn) => _sum += HighMem.Map(_machine, pfn)[0];

        """);

    // ---- silent -------------------------------------------------------------------------------------

    [Test]
    public Task System_migration_handed_to_the_same_helper_is_silent() => Verify(Migration("System") + """
                CopyBack(args);
        """, """
            private void CopyBack(MigrateVma m) => HighMem.CopyPage(_machine, _dpfn, m.Src[0] >> MigratePfn.Shift);

        """);

    [Test]
    public Task Helper_reading_dst_two_helpers_deep_is_silent() => Verify(Migration("DevicePrivate") + """
                Finish(args);
        """, """
            private void Finish(MigrateVma m) => CopyAll(m);
            private void CopyAll(MigrateVma m) => _sum += HighMem.Map(_machine, m.Dst[0] >> MigratePfn.Shift)[0];

        """);

    [Test]
    public Task Helper_translating_the_src_pfn_is_silent() => Verify(Migration("DevicePrivate") + """
                CopyBack(args);
        """, """
            private void CopyBack(MigrateVma m) => HighMem.CopyPage(_machine, _dpfn, BackingOf(m.Src[0] >> MigratePfn.Shift));

        """);

    [Test]
    public Task Helper_using_the_migration_without_cpu_access_is_silent() => Verify(Migration("DevicePrivate") + """
                Count(args);
        """, """
            private void Count(MigrateVma m) => Tally(m);
            private void Tally(MigrateVma m) => _sum += (long)(m.Src[0] >> MigratePfn.Shift);

        """);
}
