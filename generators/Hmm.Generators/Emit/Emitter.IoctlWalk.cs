using Hmm.Generators.Models;

namespace Hmm.Generators;

// HmmDriver.MigrationWalk = TestHmmIoctl: the pieces of the Migration part that differ from the
// generated default walk, as lib/test_hmm.c's dmirror_migrate_to_device / dmirror_migrate_to_system
// walk. Kept apart so EmitMigration's template reads as the default; each string below replaces
// one default string only when the option is on, so the default text stays byte-identical.
internal static partial class Emitter
{
    // The default piece: 2 MiB-aligned, EFAULT without a VMA (the first line follows the template's indentation).
    private static readonly string DefaultPiece =
        "if (vma == null || a < vma.Start) { e = " + Errno + ".EFAULT; break; }\n"
        + "                // 2 MiB-aligned pieces, so a THP is collected whole.\n"
        + "                next = global::System.Math.Min(global::System.Math.Min(end, vma.End), (a & ~(" + Page + ".PmdSize - 1)) + " + Page + ".PmdSize);";

    // test_hmm: vma_lookup + VM_READ → EINVAL; min(end, addr + PTRS_PER_PTE pages), clipped to vm_end.
    private static readonly string IoctlPiece =
        "// test_hmm's walk: no VMA or no VM_READ is EINVAL; at most 512 pages from the address (not\n"
        + "                // 2 MiB-aligned: a THP across a piece boundary is collected in parts), clipped to the VMA.\n"
        + "                if (vma == null || a < vma.Start || (vma.Flags & global::Hmm.Runtime.Mm.VmFlags.Read) == 0) { e = " + Errno + ".EINVAL; break; }\n"
        + "                next = global::System.Math.Min(global::System.Math.Min(end, vma.End), a + " + Page + ".PmdSize);";

    // After migrate_vma_pages, under U: no invalidation ran before migrating to the device, so the
    // hardware table of the piece (which may still hold the old system pfns) is cleared here, just
    // before [OnMigrated] maps what moved (dmirror_migrate_finalize_and_map); the driver's own entries
    // of pages that did not move are left alone, as test_hmm leaves its xarray entries.
    private static string IoctlMigrated(DriverModel m)
    {
        string user = Call(m, CallbackKind.OnMigrated, "args") is { } om ? "\n                        " + om : "";
        return $$"""

                                    {{U(m)}}.Lock();
                                    try
                                    {
                                        if (toDevice) Device.Invalidate(Instance, a, next);{{user}}
                                    }
                                    finally { {{U(m)}}.Unlock(); }
                """;
    }

    // The MigrateToSystem overload that also reports test_hmm's cpages.
    private static string IoctlEntriesOverload(DriverModel m) => $$"""


            /// <summary>
            /// <see cref="MigrateToSystem(ulong, ulong, out long)"/> that also reports test_hmm's
            /// <c>cpages</c> in <paramref name="entries"/> (dmirror_successful_migrated_pages): source
            /// entries left VALID and MIGRATE after migrate_vma_pages, a 2 MiB entry counted once.
            /// </summary>
            {{GeneratedCode}}
            {{MayBlock}}
            [global::Hmm.Dsl.Excludes({{Literal(ULockName(m))}})]
            public {{Errno}} MigrateToSystem(ulong start, ulong end, out long moved, out long entries)
            {
                var e = __HmmMigrate(start, end, toDevice: false, out moved, out entries);
                global::System.Threading.Interlocked.Add(ref __hmmPagesToSystem, moved);
                if (moved != 0) Device.Meters.AddPagesMigratedFromDevice(moved);
                return e;
            }
        """;

    // The erase on the way to system memory and the entry count (placed before __HmmCountMoved).
    private static string IoctlHelpers(DriverModel m) => ($$"""
            /// <summary>
            /// test_hmm's erase on the way to system memory (dmirror_devmem_fault_alloc_and_copy erases each
            /// page it copies): the own invalidation (the MIGRATE event was filtered, HMM-R19) of each run of
            /// entries that got a system page, before migrate_vma_pages; an entry left on the device keeps
            /// its mapping.
            /// </summary>
            {{GeneratedCode}}
            [global::Hmm.Dsl.Excludes({{Literal(ULockName(m))}})]
            private void __HmmInvalidateCollected({{AddressSpace}} mm, ulong start, ulong[] dst, int n)
            {
                for (int i = 0; i < n;)
                {
                    if (!{{MigratePfn}}.IsValid(dst[i])) { i++; continue; }
                    int first = i;
                    while (i < n && {{MigratePfn}}.IsValid(dst[i])) i += (dst[i] & {{MigratePfn}}.Compound) != 0 ? {{Page}}.PmdPages : 1;
                    if (i > n) i = n;
                    __HmmInvalidateOwn(mm, start + ((ulong)first << {{Page}}.Shift), start + ((ulong)i << {{Page}}.Shift), {{NotifyEvent}}.Migrate);
                }
            }

            /// <summary>test_hmm's cpages of MIGRATE_TO_SYS: source entries still VALID and MIGRATE after migrate_vma_pages, a 2 MiB entry once.</summary>
            {{GeneratedCode}}
            private static long __HmmCountEntries(ulong[] src, int n)
            {
                long entries = 0;
                const ulong done = {{MigratePfn}}.Migrate | {{MigratePfn}}.Valid;
                for (int i = 0; i < n; i++)
                    if ((src[i] & done) == done) entries++;
                return entries;
            }
            """).TrimStart() + "\n\n    ";
}
