using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>HMM1040 (MIG-R06): the destination of a failed copy reaches migrate_vma_pages.</summary>
public sealed class CopyExposureTests
{
    private const string Head = """
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

    private const string Tail = """
                }
                finally { MigrateVma.Finalize(args); }
            }

        """;

    private const string End = "}\n";

    private static Task Verify(string body, string helpers = "") => HmmVerifier.VerifyAsync(Head + body + Tail + helpers + End);

    [Test]
    public Task Copy_status_ignored_fires() => Verify("""
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        dst[i] = MigratePfn.FromPfn(d);
                        _copy.TryCopy([new PageCopy(Source(args, i), d)]);
                    }
                    {|HMM1040:MigrateVma.Pages(args)|};
        """);

    [Test]
    public Task Failure_counted_but_entry_kept_fires() => Verify("""
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        dst[i] = MigratePfn.FromPfn(d);
                        if (!_copy.TryCopy([new PageCopy(Source(args, i), d)])) _failed++;
                    }
                    {|HMM1040:MigrateVma.Pages(args)|};
        """);

    [Test]
    public Task Entry_written_after_the_copy_failed_fires() => Verify("""
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        bool ok = _copy.TryCopy([new PageCopy(Source(args, i), d)]);
                        if (!ok) _failed++;
                        dst[i] = MigratePfn.FromPfn(d) | MigratePfn.Write;
                    }
                    {|HMM1040:MigrateVma.Pages(args)|};
        """);

    [Test]
    public Task Failed_batch_not_cleared_fires() => Verify("""
                    var copies = new PageCopy[args.EntryCount];
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        copies[i] = new PageCopy(Source(args, i), d);
                        dst[i] = MigratePfn.FromPfn(d);
                    }
                    if (!_copy.TryCopy(copies)) _failed++;
                    {|HMM1040:MigrateVma.Pages(args)|};
        """);

    [Test]
    public Task Failure_two_helpers_deep_fires() => Verify("""
                    CopyAll(args);
                    {|HMM1040:MigrateVma.Pages(args)|};
        """, """
            private void CopyAll(MigrateVma args)
            {
                for (int i = 0; i < args.EntryCount; i++)
                    if (Alloc(out ulong d)) CopyOne(args, i, d);
            }

            private void CopyOne(MigrateVma args, int i, ulong d)
            {
                args.Dst[i] = MigratePfn.FromPfn(d);
                _copy.TryCopy([new PageCopy(Source(args, i), d)]);
            }

        """);

    [Test]
    public Task Skipping_the_failed_page_is_silent() => Verify("""
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        if (!_copy.TryCopy([new PageCopy(Source(args, i), d)])) { _failed++; continue; }
                        dst[i] = MigratePfn.FromPfn(d);
                    }
                    MigrateVma.Pages(args);
        """);

    [Test]
    public Task Clearing_the_failed_entry_is_silent() => Verify("""
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        dst[i] = MigratePfn.FromPfn(d);
                        if (_copy.TryCopy([new PageCopy(Source(args, i), d)]) == false) dst[i] = 0;
                    }
                    MigrateVma.Pages(args);
        """);

    [Test]
    public Task Clearing_a_failed_batch_is_silent() => Verify("""
                    var copies = new PageCopy[args.EntryCount];
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        copies[i] = new PageCopy(Source(args, i), d);
                        dst[i] = MigratePfn.FromPfn(d);
                    }
                    if (!_copy.TryCopy(copies)) Array.Clear(dst);
                    MigrateVma.Pages(args);
        """);

    [Test]
    public Task Helper_reporting_failure_two_deep_is_silent() => Verify("""
                    CopyAll(args);
                    MigrateVma.Pages(args);
        """, """
            private void CopyAll(MigrateVma args)
            {
                for (int i = 0; i < args.EntryCount; i++)
                    if (Alloc(out ulong d) && !CopyOne(args, i, d)) _failed++;
            }

            private bool CopyOne(MigrateVma args, int i, ulong d)
            {
                args.Dst[i] = MigratePfn.FromPfn(d);
                if (_copy.TryCopy([new PageCopy(Source(args, i), d)])) return true;
                args.Dst[i] = 0;
                return false;
            }

        """);

    [Test]
    public Task Infallible_copy_is_silent() => Verify("""
                    for (int i = 0; i < args.EntryCount; i++)
                    {
                        if (!Alloc(out ulong d)) continue;
                        dst[i] = MigratePfn.FromPfn(d);
                        _copy.Copy([new PageCopy(Source(args, i), d)]);
                    }
                    MigrateVma.Pages(args);
        """);
}
