using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>HMM1042: a device-private pfn (vmf.Page) read or written through a CPU accessor (kmap, copy_highpage).</summary>
public sealed class CpuAccessTests
{
    private const string Head = """
        class Gpu
        {
            private Machine _machine = null!;
            private CopyEngine _copy = null!;
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

    private static Task Verify(string body, string helpers = "") => HmmVerifier.VerifyAsync(Head + body + Tail + helpers + "}\n");

    [Test]
    public Task Cpu_copy_from_the_faulting_page_fires() => Verify("""
                HighMem.CopyPage(_machine, dpfn, {|HMM1042:vmf.Page|});
        """);

    [Test]
    public Task Kmap_of_a_local_holding_a_private_pfn_fires() => Verify("""
                ulong src = vmf.Page;
                ulong next = src;
                _sum += HighMem.Map(_machine, {|HMM1042:next + 1|})[0];
        """);

    [Test]
    public Task Cpu_read_two_helpers_deep_fires() => Verify("""
                Save({|HMM1042:vmf.Page|});
        """, """
            private void Save(ulong pfn) => Dump(pfn);
            private void Dump(ulong pfn) => _sum += HighMem.Map(_machine, pfn)[0];

        """);

    [Test]
    public Task Copy_engine_is_silent() => Verify("""
                _copy.Copy([new PageCopy(vmf.Page, dpfn)]);
        """);

    [Test]
    public Task Cpu_copy_from_the_backing_page_is_silent() => Verify("""
                HighMem.CopyPage(_machine, dpfn, BackingOf(vmf.Page));
        """);

    [Test]
    public Task System_page_two_helpers_deep_is_silent() => Verify("""
                Save(dpfn);
                _copy.Copy([new PageCopy(vmf.Page, dpfn)]);
        """, """
            private void Save(ulong pfn) => Dump(pfn);
            private void Dump(ulong pfn) => _sum += HighMem.Map(_machine, pfn)[0];

        """);
}
