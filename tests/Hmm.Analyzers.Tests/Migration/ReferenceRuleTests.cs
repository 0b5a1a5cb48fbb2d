using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>References on every path: HMM1020 (MIG-R02), HMM1022 (EXC-R01), HMM1023 (HMM-R13), HMM1025 (pins).</summary>
public sealed class ReferenceRuleTests
{
    private const string Mig = """
        class D
        {
            private AddressSpace _mm = null!;
            private Errno Copy(MigrateVma args) => args.EntryCount > 0 ? Errno.Ok : Errno.ENOMEM;
            [RequiresShared("args.Vma.Mm.MmapLock")] private void Done(MigrateVma args) => MigrateVma.Finalize(args);
            [RequiresShared("args.Vma.Mm.MmapLock")] private void Finish(MigrateVma args) => Done(args);

        """;

    private const string Open = """
                _mm.MmapLock.ReadLock();
                try
                {
                    using var args = new MigrateVma { Vma = _mm.FindVma(0), Start = 0, End = 4096, Src = new ulong[1], Dst = new ulong[1] };

        """;

    private const string Close = """
                }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """;

    // ---- HMM1020 ----
    [Test]
    public Task Error_path_without_finalize_fires() => HmmVerifier.VerifyAsync(Mig + "    public Errno F()\n    {\n" + Open + """
                    var e = {|HMM1020:MigrateVma.Setup(args)|};
                    if (e != Errno.Ok) return e;
                    if (Copy(args) != Errno.Ok) return Errno.ENOMEM;
                    MigrateVma.Pages(args);
                    MigrateVma.Finalize(args);
                    return Errno.Ok;
        """ + Close);

    [Test]
    public Task Finalize_only_on_success_branch_fires() => HmmVerifier.VerifyAsync(Mig + "    public void F(bool copy)\n    {\n" + Open + """
                    if ({|HMM1020:MigrateVma.Setup(args)|} == Errno.Ok && copy) { MigrateVma.Pages(args); MigrateVma.Finalize(args); }
        """ + Close);

    [Test]
    public Task Helper_that_does_not_finalize_fires() => HmmVerifier.VerifyAsync(Mig + "    public void F()\n    {\n" + Open + """
                    if ({|HMM1020:MigrateVma.Setup(args)|} != Errno.Ok) return;
                    Copy(args);
        """ + Close);

    [Test]
    public Task Finalize_on_every_path_is_silent() => HmmVerifier.VerifyAsync(Mig + "    public Errno F()\n    {\n" + Open + """
                    var e = MigrateVma.Setup(args);
                    if (e != Errno.Ok) return e;
                    if (Copy(args) != Errno.Ok) { MigrateVma.Finalize(args); return Errno.ENOMEM; }
                    MigrateVma.Pages(args);
                    MigrateVma.Finalize(args);
                    return Errno.Ok;
        """ + Close);

    [Test]
    public Task Finalize_two_helpers_deep_is_silent() => HmmVerifier.VerifyAsync(Mig + "    public void F()\n    {\n" + Open + """
                    if (MigrateVma.Setup(args) is not Errno.Ok) return;
                    Copy(args);
                    Finish(args);
        """ + Close);

    [Test]
    public Task Finalize_in_finally_is_silent() => HmmVerifier.VerifyAsync(Mig + "    public void F()\n    {\n" + Open + """
                    if (MigrateVma.Setup(args) != Errno.Ok) return;
                    try { if (Copy(args) != Errno.Ok) return; MigrateVma.Pages(args); }
                    finally { MigrateVma.Finalize(args); }
        """ + Close);

    // ---- HMM1022 ----
    private const string Exc = """
        class D
        {
            private AddressSpace _mm = null!;
            private readonly KernelMutex _update = new("u");
            private Errno Map(ulong pfn) => pfn != 0 ? Errno.Ok : Errno.EFAULT;

        """;

    [Test]
    public Task Exclusive_page_not_disposed_on_error_fires() => HmmVerifier.VerifyAsync(Exc + """
            public Errno F(ulong a)
            {
                _mm.MmapLock.ReadLock();
                try
                {
                    var e = {|HMM1022:DeviceExclusive.Make(_mm, a, null, out var page)|};
                    if (e != Errno.Ok) return e;
                    if (Map(page.Pfn) != Errno.Ok) return Errno.EFAULT;
                    page.Dispose();
                    return Errno.Ok;
                }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    [Test]
    public Task Exclusive_page_leaked_on_retry_fires() => HmmVerifier.VerifyAsync(Exc + """
            public void F(ulong a)
            {
                _mm.MmapLock.ReadLock();
                try
                {
                    for (int i = 0; i < 3; i++)
                    {
                        if ({|HMM1022:DeviceExclusive.Make(_mm, a, null, out var page)|} != Errno.Ok) continue;
                        if (Map(page.Pfn) != Errno.Ok) continue;
                        page.Dispose();
                        break;
                    }
                }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    [Test]
    public Task Exclusive_page_never_released_fires() => HmmVerifier.VerifyAsync(Exc + """
            public ulong F(ulong a)
            {
                _mm.MmapLock.ReadLock();
                try { return {|HMM1022:DeviceExclusive.Make(_mm, a, null, out var page)|} == Errno.Ok ? page.Pfn : 0; }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    [Test]
    public Task Exclusive_page_in_using_is_silent() => HmmVerifier.VerifyAsync(Exc + """
            public Errno F(ulong a)
            {
                _mm.MmapLock.ReadLock();
                try
                {
                    var e = DeviceExclusive.Make(_mm, a, null, out var page);
                    if (e != Errno.Ok) return e;
                    using (page) { _update.Lock(); try { return Map(page.Pfn); } finally { _update.Unlock(); } }
                }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    [Test]
    public Task Exclusive_page_disposed_on_every_retry_is_silent() => HmmVerifier.VerifyAsync(Exc + """
            public void F(ulong a)
            {
                _mm.MmapLock.ReadLock();
                try
                {
                    for (int i = 0; i < 3; i++)
                    {
                        if (DeviceExclusive.Make(_mm, a, null, out var page) != Errno.Ok) continue;
                        try { if (Map(page.Pfn) != Errno.Ok) continue; } finally { page.Dispose(); }
                        break;
                    }
                }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    [Test]
    public Task Exclusive_page_released_by_helper_is_silent() => HmmVerifier.VerifyAsync(Exc + """
            private static void Drop(ExclusivePage p) => p.Dispose();
            public void F(ulong a)
            {
                _mm.MmapLock.ReadLock();
                try { if (DeviceExclusive.Make(_mm, a, null, out var page) == Errno.Ok) Drop(page); }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    // ---- HMM1023 ----
    private const string Mm = """
        class D
        {
            private AddressSpace _mm = null!;
            private Errno Work() => Errno.Ok;

        """;

    [Test]
    public Task Mm_ref_leaked_on_error_fires() => HmmVerifier.VerifyAsync(Mm + """
            public Errno F() { if (!{|HMM1023:_mm.TryGet()|}) return Errno.EINVAL; if (Work() != Errno.Ok) return Errno.EFAULT; _mm.Put(); return Errno.Ok; }
        }
        """);

    [Test]
    public Task Mm_ref_of_parameter_leaked_on_throw_fires() => HmmVerifier.VerifyAsync(Mm + """
            public void F(AddressSpace mm) { if ({|HMM1023:mm.TryGet()|}) { if (Work() != Errno.Ok) throw new InvalidOperationException(); mm.Put(); } }
        }
        """);

    [Test]
    public Task Mm_ref_result_in_local_leaked_fires() => HmmVerifier.VerifyAsync(Mm + """
            public void F() { bool got = {|HMM1023:_mm.TryGet()|}; if (!got) return; Work(); }
        }
        """);

    [Test]
    public Task Mm_ref_put_in_finally_is_silent() => HmmVerifier.VerifyAsync(Mm + """
            public Errno F() { if (!_mm.TryGet()) return Errno.EINVAL; try { return Work(); } finally { _mm.Put(); } }
        }
        """);

    [Test]
    public Task Mm_ref_put_by_helper_two_deep_is_silent() => HmmVerifier.VerifyAsync(Mm + """
            private void Drop(AddressSpace mm) => mm.Put();
            private void Release(AddressSpace mm) => Drop(mm);
            public void F(AddressSpace mm) { if (!mm.TryGet()) return; Work(); Release(mm); }
        }
        """);

    [Test]
    public Task Failed_get_needs_no_put_is_silent() => HmmVerifier.VerifyAsync(Mm + """
            public bool F() { if (_mm.TryGet() == false) return false; _mm.Put(); return true; }
        }
        """);

    // ---- HMM1025 ----
    [Test]
    public Task Pin_leaked_fires() => HmmVerifier.VerifyAsync("""
        class D { public int F(Process p) { var pins = {|HMM1025:p.PinUserPages(0, 1, true, false)|}; return pins.Pfns.Count; } }
        """);

    [Test]
    public Task Pin_leaked_on_early_return_fires() => HmmVerifier.VerifyAsync("""
        class D { public int F(Process p, bool x) { var pins = {|HMM1025:p.PinUserPages(0, 1, true, false)|}; if (x) return 0; pins.Dispose(); return 1; } }
        """);

    [Test]
    public Task Pin_leaked_on_throw_fires() => HmmVerifier.VerifyAsync("""
        class D { public void F(Process p) { var pins = {|HMM1025:p.PinUserPages(0, 1, true, false)|}; if (pins.Pfns.Count == 0) throw new InvalidOperationException(); pins.Dispose(); } }
        """);

    [Test]
    public Task Pin_in_using_is_silent() => HmmVerifier.VerifyAsync("""
        class D { public int F(Process p) { using (var pins = p.PinUserPages(0, 1, true, false)) { return pins.Pfns.Count; } } }
        """);

    [Test]
    public Task Pin_in_using_declaration_is_silent() => HmmVerifier.VerifyAsync("""
        class D { public int F(Process p) { using var pins = p.PinUserPages(0, 1, true, false); return pins.Pfns.Count; } }
        """);

    [Test]
    public Task Pin_returned_to_caller_is_silent() => HmmVerifier.VerifyAsync("""
        class D { public PinnedPages F(Process p) { var pins = p.PinUserPages(0, 1, true, false); return pins; } }
        """);
}
