using Hmm.Analyzers.CodeFixes.Flow;
using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.CodeFixes;

/// <summary>
/// Fixes of the device-page rules: HMM1040 clears the dst entry of a failed copy, HMM1042 copies
/// with the device's engine instead of the CPU, HMM1043 drops a second initialisation of a page
/// initialised on every path. Before/after text, the result compiles and the diagnostic is gone;
/// shapes the fixes do not repair get no fix.
/// </summary>
public sealed class DevicePageFixTests
{
    private const string MigrateHead = """
        class D
        {
            private CopyEngine _copy = null!;
            private int _failed;
            private static bool Alloc(out ulong pfn) { pfn = 7; return true; }
            private static ulong Source(MigrateVma args, int i) => args.Src[i] >> MigratePfn.Shift;

            [RequiresShared("args.Vma.Mm.MmapLock")]
            public void Migrate(MigrateVma args)
            {
                if (MigrateVma.Setup(args) != Errno.Ok) return;
                try
                {
                    var dst = args.Dst;

        """;

    private const string MigrateTail = """
                }
                finally { MigrateVma.Finalize(args); }
            }
        }
        """;

    private static Task Fix1040(string before, string after) =>
        HmmFixVerifier<ClearFailedDestinationFixer>.VerifyAsync(MigrateHead + before + MigrateTail, MigrateHead + after + MigrateTail, compilationEnd: true);

    [Test]
    public Task Ignored_copy_status_clears_the_entry() => Fix1040("""
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        dst[i] = MigratePfn.FromPfn(d);
                        _copy.TryCopy([new PageCopy(Source(args, i), d)]);
                    }
                    {|HMM1040:MigrateVma.Pages(args)|};
        """, """
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        dst[i] = MigratePfn.FromPfn(d);
                        if (!_copy.TryCopy([new PageCopy(Source(args, i), d)]))
                            dst[i] = 0;
                    }
                    MigrateVma.Pages(args);
        """);

    [Test]
    public Task Counted_failure_also_clears_the_entry() => Fix1040("""
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        args.Dst[i] = MigratePfn.FromPfn(d);
                        if (!_copy.TryCopy([new PageCopy(Source(args, i), d)])) _failed++;
                    }
                    {|HMM1040:MigrateVma.Pages(args)|};
        """, """
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        args.Dst[i] = MigratePfn.FromPfn(d);
                        if (!_copy.TryCopy([new PageCopy(Source(args, i), d)]))
                        {
                            args.Dst[i] = 0;
                            _failed++;
                        }
                    }
                    MigrateVma.Pages(args);
        """);

    [Test]
    public Task Failure_block_gets_the_clear_first() => Fix1040("""
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        dst[i] = MigratePfn.FromPfn(d);
                        if (!_copy.TryCopy([new PageCopy(Source(args, i), d)]))
                        {
                            _failed++;
                            continue;
                        }
                    }
                    {|HMM1040:MigrateVma.Pages(args)|};
        """, """
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        dst[i] = MigratePfn.FromPfn(d);
                        if (!_copy.TryCopy([new PageCopy(Source(args, i), d)]))
                        {
                            dst[i] = 0;
                            _failed++;
                            continue;
                        }
                    }
                    MigrateVma.Pages(args);
        """);

    [Test]
    public Task Destination_written_after_the_failure_gets_no_fix() => HmmFixVerifier<ClearFailedDestinationFixer>.VerifyNoFixAsync(MigrateHead + """
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        if (!_copy.TryCopy([new PageCopy(Source(args, i), d)])) _failed++;
                        dst[i] = MigratePfn.FromPfn(d);
                    }
                    {|HMM1040:MigrateVma.Pages(args)|};
        """ + MigrateTail);

    [Test]
    public Task Index_stepped_between_store_and_copy_gets_no_fix() => HmmFixVerifier<ClearFailedDestinationFixer>.VerifyNoFixAsync(MigrateHead + """
                    int n = 0;
                    while (n < args.EntryCount)
                    {
                        if (!Alloc(out ulong d)) break;
                        dst[n] = MigratePfn.FromPfn(d);
                        n++;
                        _copy.TryCopy([new PageCopy(Source(args, n - 1), d)]);
                    }
                    {|HMM1040:MigrateVma.Pages(args)|};
        """ + MigrateTail);

    private const string FaultHead = """
        class Gpu
        {
            private Machine _machine = null!;

        """;

    private const string FaultBody = """
            public VmFaultResult MigrateToRam(in VmFault vmf)
            {
                if (!SystemPages.TryAllocateLocked(_machine, 0, out ulong dpfn)) return VmFaultResult.Oom;

        """;

    private const string FaultTail = """

                return VmFaultResult.Ok;
            }
        }
        """;

    [Test]
    public Task Cpu_copy_from_the_faulting_page_uses_the_engine_field() => HmmFixVerifier<DeviceCopyFixer>.VerifyAsync(compilationEnd: true,
        before: FaultHead + "    private CopyEngine _copy = null!;\n" + FaultBody + """
                HighMem.CopyPage(_machine, dpfn, {|HMM1042:vmf.Page|});
        """ + FaultTail,
        after: FaultHead + "    private CopyEngine _copy = null!;\n" + FaultBody + """
                _copy.Copy([new PageCopy(vmf.Page, dpfn)]);
        """ + FaultTail);

    [Test]
    public Task Cpu_copy_into_the_device_page_uses_the_device_engine_and_keeps_the_order() => HmmFixVerifier<DeviceCopyFixer>.VerifyAsync(compilationEnd: true,
        before: FaultHead + "    private SimDevice Device { get; } = null!;\n" + FaultBody + """
                ulong page = vmf.Page;
                HighMem.CopyPage(_machine, {|HMM1042:page|}, dpfn, 0);
        """ + FaultTail,
        after: FaultHead + "    private SimDevice Device { get; } = null!;\n" + FaultBody + """
                ulong page = vmf.Page;
                Device.Copy.Copy([new PageCopy(dpfn, page, 0)]);
        """ + FaultTail);

    [Test]
    public Task Local_engine_wins_over_the_device() => HmmFixVerifier<DeviceCopyFixer>.VerifyAsync(compilationEnd: true,
        before: FaultHead + "    private SimDevice _dev = null!;\n" + FaultBody + """
                var engine = _dev.Copy;
                HighMem.CopyPage(_machine, dpfn, {|HMM1042:vmf.Page|});
        """ + FaultTail,
        after: FaultHead + "    private SimDevice _dev = null!;\n" + FaultBody + """
                var engine = _dev.Copy;
                engine.Copy([new PageCopy(vmf.Page, dpfn)]);
        """ + FaultTail);

    [Test]
    public Task Copy_in_a_helper_gets_no_fix_at_the_call() => HmmFixVerifier<DeviceCopyFixer>.VerifyNoFixAsync(FaultHead + "    private CopyEngine _copy = null!;\n" + FaultBody + """
                Save(dpfn, {|HMM1042:vmf.Page|});
                return VmFaultResult.Ok;
            }

            private void Save(ulong to, ulong from) => HighMem.CopyPage(_machine, to, from);
        }
        """);

    [Test]
    public Task Kmap_gets_no_fix() => HmmFixVerifier<DeviceCopyFixer>.VerifyNoFixAsync(FaultHead + "    private CopyEngine _copy = null!;\n    private long _sum;\n" + FaultBody + """
                _sum += HighMem.Map(_machine, {|HMM1042:vmf.Page|})[0];
        """ + FaultTail);

    [Test]
    public Task Two_engines_in_scope_get_no_fix() => HmmFixVerifier<DeviceCopyFixer>.VerifyNoFixAsync(FaultHead + "    private CopyEngine _copy = null!;\n    private CopyEngine _peerCopy = null!;\n" + FaultBody + """
                HighMem.CopyPage(_machine, dpfn, {|HMM1042:vmf.Page|});
        """ + FaultTail);

    [Test]
    public Task No_engine_in_scope_gets_no_fix() => HmmFixVerifier<DeviceCopyFixer>.VerifyNoFixAsync(FaultHead + FaultBody + """
                HighMem.CopyPage(_machine, dpfn, {|HMM1042:vmf.Page|});
        """ + FaultTail);

    private const string ReinitHead = """
        class Gpu
        {
            private DevPagemap _chunk = null!;
            private CopyEngine _copy = null!;
            private readonly System.Collections.Generic.Stack<ulong> _free = new();
            private bool Next(out ulong pfn) => _free.TryPop(out pfn);
            private static ulong Source(MigrateVma args, int i) => args.Src[i] >> MigratePfn.Shift;

        """;

    [Test]
    public Task Retry_with_the_same_page_drops_the_second_init() => HmmFixVerifier<DropReinitFixer>.VerifyAsync(compilationEnd: true, before: ReinitHead + """
            public void Fill(MigrateVma args, int i)
            {
                if (!Next(out ulong d)) return;
                _chunk.InitPage(d);
                if (!_copy.TryCopy([new PageCopy(Source(args, i), d)]))
                {
                    {|HMM1043:_chunk.InitPage(d)|};
                    if (!_copy.TryCopy([new PageCopy(Source(args, i), d)])) return;
                }
                args.Dst[i] = MigratePfn.FromPfn(d);
            }
        }
        """, after: ReinitHead + """
            public void Fill(MigrateVma args, int i)
            {
                if (!Next(out ulong d)) return;
                _chunk.InitPage(d);
                if (!_copy.TryCopy([new PageCopy(Source(args, i), d)]))
                {
                    if (!_copy.TryCopy([new PageCopy(Source(args, i), d)])) return;
                }
                args.Dst[i] = MigratePfn.FromPfn(d);
            }
        }
        """);

    [Test]
    public Task Straight_second_init_is_dropped() => HmmFixVerifier<DropReinitFixer>.VerifyAsync(compilationEnd: true, before: ReinitHead + """
            public void Fill(MigrateVma args, int i)
            {
                if (!Next(out ulong d)) return;
                _chunk.InitPage(d);
                _copy.Copy([new PageCopy(Source(args, i), d)]);
                {|HMM1043:_chunk.InitPage(d)|};
                args.Dst[i] = MigratePfn.FromPfn(d);
            }
        }
        """, after: ReinitHead + """
            public void Fill(MigrateVma args, int i)
            {
                if (!Next(out ulong d)) return;
                _chunk.InitPage(d);
                _copy.Copy([new PageCopy(Source(args, i), d)]);
                args.Dst[i] = MigratePfn.FromPfn(d);
            }
        }
        """);

    [Test]
    public Task Conditional_first_init_gets_no_fix() => HmmFixVerifier<DropReinitFixer>.VerifyNoFixAsync(ReinitHead + """
            public void Fill(MigrateVma args, int i, bool warm)
            {
                if (!Next(out ulong d)) return;
                if (warm) _chunk.InitPage(d);
                {|HMM1043:_chunk.InitPage(d)|};
                args.Dst[i] = MigratePfn.FromPfn(d);
            }
        }
        """);

    [Test]
    public Task Page_initialised_by_the_allocator_gets_no_fix() => HmmFixVerifier<DropReinitFixer>.VerifyNoFixAsync(ReinitHead + """
            public void Fill(MigrateVma args, int i)
            {
                if (!Grab(out ulong d)) return;
                {|HMM1043:_chunk.InitPage(d)|};
                args.Dst[i] = MigratePfn.FromPfn(d);
            }

            private bool Grab(out ulong pfn) => Take(out pfn);
            private bool Take(out ulong pfn)
            {
                if (!Next(out pfn)) return false;
                _chunk.InitPage(pfn);
                return true;
            }
        }
        """);
}
