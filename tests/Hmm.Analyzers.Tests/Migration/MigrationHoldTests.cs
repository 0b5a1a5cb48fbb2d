using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>HMM1030 (MIG-R01): Setup, Pages and Finalize under one mmap lock hold.</summary>
public sealed class MigrationHoldTests
{
    private const string Mig = """
        class D
        {
            private AddressSpace _mm = null!;
            private void Copy(MigrateVma args) { }
            [Releases("_mm.MmapLock")] private void Drop() => _mm.MmapLock.ReadUnlock();
            [Acquires("_mm.MmapLock")] private void Retake() => _mm.MmapLock.ReadLock();

        """;

    [Test]
    public Task Lock_dropped_for_the_copy_fires() => HmmVerifier.VerifyAsync(Mig + """
            public void F()
            {
                _mm.MmapLock.ReadLock();
                using var args = new MigrateVma { Vma = _mm.FindVma(0), Start = 0, End = 4096, Src = new ulong[1], Dst = new ulong[1] };
                if (MigrateVma.Setup(args) != Errno.Ok) { _mm.MmapLock.ReadUnlock(); return; }
                {|HMM1030:_mm.MmapLock.ReadUnlock()|};
                Copy(args);
                _mm.MmapLock.ReadLock();
                MigrateVma.Pages(args);
                MigrateVma.Finalize(args);
                _mm.MmapLock.ReadUnlock();
            }
        }
        """);

    [Test]
    public Task Lock_dropped_between_pages_and_finalize_fires() => HmmVerifier.VerifyAsync(Mig + """
            public void F()
            {
                _mm.MmapLock.ReadLock();
                using var args = new MigrateVma { Vma = _mm.FindVma(0), Start = 0, End = 4096, Src = new ulong[1], Dst = new ulong[1] };
                var e = MigrateVma.Setup(args);
                if (e != Errno.Ok) { _mm.MmapLock.ReadUnlock(); return; }
                Copy(args);
                MigrateVma.Pages(args);
                {|HMM1030:_mm.MmapLock.ReadUnlock()|};
                _mm.MmapLock.WriteLock();
                MigrateVma.Finalize(args);
                _mm.MmapLock.WriteUnlock();
            }
        }
        """);

    [Test]
    public Task Lock_dropped_through_a_releasing_helper_fires() => HmmVerifier.VerifyAsync(Mig + """
            public void F()
            {
                _mm.MmapLock.ReadLock();
                using var args = new MigrateVma { Vma = _mm.FindVma(0), Start = 0, End = 4096, Src = new ulong[1], Dst = new ulong[1] };
                if (MigrateVma.Setup(args) != Errno.Ok) { Drop(); return; }
                {|HMM1030:Drop()|};
                Retake();
                MigrateVma.Pages(args);
                MigrateVma.Finalize(args);
                Drop();
            }
        }
        """);

    [Test]
    public Task One_hold_covering_all_three_is_silent() => HmmVerifier.VerifyAsync(Mig + """
            public void F()
            {
                _mm.MmapLock.ReadLock();
                try
                {
                    using var args = new MigrateVma { Vma = _mm.FindVma(0), Start = 0, End = 4096, Src = new ulong[1], Dst = new ulong[1] };
                    if (MigrateVma.Setup(args) != Errno.Ok) return;
                    try { Copy(args); MigrateVma.Pages(args); }
                    finally { MigrateVma.Finalize(args); }
                }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    [Test]
    public Task Unlock_after_a_failed_setup_is_silent() => HmmVerifier.VerifyAsync(Mig + """
            public Errno F()
            {
                _mm.MmapLock.ReadLock();
                using var args = new MigrateVma { Vma = _mm.FindVma(0), Start = 0, End = 4096, Src = new ulong[1], Dst = new ulong[1] };
                var e = MigrateVma.Setup(args);
                if (e != Errno.Ok) { _mm.MmapLock.ReadUnlock(); return e; }
                MigrateVma.Pages(args);
                MigrateVma.Finalize(args);
                _mm.MmapLock.ReadUnlock();
                return Errno.Ok;
            }
        }
        """);

    [Test]
    public Task Lock_dropped_only_after_finalize_in_a_loop_is_silent() => HmmVerifier.VerifyAsync(Mig + """
            public void F(int chunks)
            {
                for (int i = 0; i < chunks; i++)
                {
                    _mm.MmapLock.ReadLock();
                    using var args = new MigrateVma { Vma = _mm.FindVma(0), Start = (ulong)i * 4096, End = (ulong)(i + 1) * 4096, Src = new ulong[1], Dst = new ulong[1] };
                    if (MigrateVma.Setup(args) == Errno.Ok) { MigrateVma.Pages(args); MigrateVma.Finalize(args); }
                    _mm.MmapLock.ReadUnlock();
                }
            }
        }
        """);
}
