using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>
/// HMM1042 for migrations selecting system pages too (<c>MigrateSelect.System | DevicePrivate</c>):
/// any <c>Src</c> entry may name a device-private page, so a CPU read of one fires unless it is
/// guarded by a check that the page is not device-private — <c>DevPagemap.Of(machine, pfn)</c>
/// (page_pgmap / is_device_private_page) null, or of another kind — in an <c>if</c>, after an early
/// <c>continue</c>, through a local, or inside the helper the migration is handed to.
/// </summary>
public sealed class CpuAccessMixedMigrationTests
{
    private const string Head = """
        class Gpu
        {
            private Machine _machine = null!;
            private long _sum;
            private ulong _dpfn;
            private void CopyBack(MigrateVma m) => HighMem.CopyPage(_machine, _dpfn, m.Src[0] >> MigratePfn.Shift);
            private void CopySystem(MigrateVma m)
            {
                ulong pfn = m.Src[0] >> MigratePfn.Shift;
                if (DevPagemap.Of(_machine, pfn) is not { Kind: DevicePageKind.Private })
                    HighMem.CopyPage(_machine, _dpfn, pfn);
            }

            public void Evict()
            {
                using var args = new MigrateVma { Vma = null!, Start = 0, End = 8192, Src = new ulong[2], Dst = new ulong[2], Flags = MigrateSelect.System | MigrateSelect.DevicePrivate, PgmapOwner = this };

        """;

    private static Task Verify(string body) => HmmVerifier.VerifyAsync(Head + body + "\n        }\n}\n");

    // ---- fire ---------------------------------------------------------------------------------------

    [Test]
    public Task Unguarded_cpu_read_of_a_mixed_src_entry_fires() => Verify("""
                _sum += HighMem.Map(_machine, {|HMM1042:args.Src[0] >> MigratePfn.Shift|})[0];
        """);

    [Test]
    public Task Read_guarded_by_the_wrong_check_fires() => Verify("""
                for (int i = 0; i < 2; i++)
                {
                    ulong pfn = args.Src[i] >> MigratePfn.Shift;
                    if (DevPagemap.Of(_machine, pfn) != null) _sum += HighMem.Map(_machine, {|HMM1042:pfn|})[0];
                }
        """);

    [Test]
    public Task Mixed_migration_handed_to_an_unguarded_helper_fires() => Verify("""
                CopyBack({|HMM1042:args|});
        """);

    // ---- silent -------------------------------------------------------------------------------------

    [Test]
    public Task Read_of_a_system_page_checked_by_pagemap_null_is_silent() => Verify("""
                ulong pfn = args.Src[0] >> MigratePfn.Shift;
                if (DevPagemap.Of(_machine, pfn) == null) _sum += HighMem.Map(_machine, pfn)[0];
        """);

    [Test]
    public Task Device_private_entries_skipped_before_the_read_is_silent() => Verify("""
                for (int i = 0; i < 2; i++)
                {
                    ulong pfn = args.Src[i] >> MigratePfn.Shift;
                    if (DevPagemap.Of(_machine, pfn) is { Kind: DevicePageKind.Private }) continue;
                    HighMem.CopyPage(_machine, _dpfn, pfn);
                }
        """);

    [Test]
    public Task Kind_checked_through_a_local_is_silent() => Verify("""
                ulong pfn = args.Src[0] >> MigratePfn.Shift;
                var pgmap = DevPagemap.Of(_machine, pfn);
                if (pgmap?.Kind != DevicePageKind.Private) _sum += HighMem.Map(_machine, pfn)[0];
        """);

    [Test]
    public Task Mixed_migration_handed_to_a_helper_that_checks_is_silent() => Verify("""
                CopySystem(args);
        """);
}
