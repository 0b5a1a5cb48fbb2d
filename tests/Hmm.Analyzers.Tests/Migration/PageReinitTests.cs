using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>HMM1043 (MIG-R10): a device page initialised (zone_device_page_init) again while this code still holds it.</summary>
public sealed class PageReinitTests
{
    private const string Head = """
        class Gpu
        {
            private DevPagemap _chunk = null!;
            private CopyEngine _copy = null!;
            private readonly System.Collections.Generic.Stack<ulong> _free = new();
            private bool Next(out ulong pfn) => _free.TryPop(out pfn);
            private static ulong Source(MigrateVma args, int i) => args.Src[i] >> MigratePfn.Shift;

        """;

    private static Task Verify(string members) => HmmVerifier.VerifyAsync(Head + members + "}\n");

    [Test]
    public Task Retrying_with_the_same_page_fires() => Verify("""
            public void Fill(MigrateVma args)
            {
                ulong d = 0;
                bool retry = false;
                for (int i = 0; i < args.EntryCount; i++)
                {
                    if (!retry && !Next(out d)) return;
                    {|HMM1043:_chunk.InitPage(d)|};
                    if (!_copy.TryCopy([new PageCopy(Source(args, i), d)])) { retry = true; continue; }
                    retry = false;
                    args.Dst[i] = MigratePfn.FromPfn(d);
                }
            }

        """);

    [Test]
    public Task Page_initialised_by_the_allocator_two_deep_fires() => Verify("""
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

        """);

    [Test]
    public Task Second_initialisation_through_a_helper_fires() => Verify("""
            public void Fill(MigrateVma args, int i)
            {
                if (!Next(out ulong d)) return;
                _chunk.InitPage(d);
                {|HMM1043:Prepare(d)|};
                args.Dst[i] = MigratePfn.FromPfn(d);
            }

            private void Prepare(ulong pfn) => _chunk.InitPage(pfn);

        """);

    [Test]
    public Task A_fresh_page_each_attempt_is_silent() => Verify("""
            public void Fill(MigrateVma args)
            {
                for (int i = 0; i < args.EntryCount; i++)
                {
                    if (!Next(out ulong d)) return;
                    _chunk.InitPage(d);
                    if (!_copy.TryCopy([new PageCopy(Source(args, i), d)])) continue;
                    args.Dst[i] = MigratePfn.FromPfn(d);
                }
            }

        """);

    [Test]
    public Task Initialising_a_range_page_by_page_is_silent() => Verify("""
            public void Prime(ulong pages)
            {
                for (ulong k = 0; k < pages; k++) _chunk.InitPage(_chunk.FirstPfn + k);
            }

        """);

    [Test]
    public Task Allocator_two_deep_without_a_second_init_is_silent() => Verify("""
            public void Fill(MigrateVma args, int i)
            {
                if (!Grab(out ulong d)) return;
                args.Dst[i] = MigratePfn.FromPfn(d);
                if (!Grab(out d)) return;
                _copy.Copy([new PageCopy(Source(args, i), d)]);
            }

            private bool Grab(out ulong pfn) => Take(out pfn);
            private bool Take(out ulong pfn)
            {
                if (!Next(out pfn)) return false;
                _chunk.InitPage(pfn);
                return true;
            }

        """);
}
