using Hmm.Analyzers.CodeFixes.Flow;
using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.CodeFixes;

/// <summary>Code fixes: before/after text; the result compiles and its diagnostic is gone.</summary>
public sealed class FixerTests
{
    [Test]
    public Task Unlock_moves_into_finally() => HmmFixVerifier<ReleaseInFinallyFixer>.VerifyAsync("""
        class D
        {
            private readonly KernelMutex _m = new("d");
            public int F(bool x)
            {
                {|HMM1004:_m.Lock()|};
                if (x) return 1;
                _m.Unlock();
                return 0;
            }
        }
        """, """
        class D
        {
            private readonly KernelMutex _m = new("d");
            public int F(bool x)
            {
                _m.Lock();
                try
                {
                    if (x) return 1;
                }
                finally
                {
                    _m.Unlock();
                }

                return 0;
            }
        }
        """);

    [Test]
    public Task Finalize_moves_into_finally_and_early_copy_goes() => HmmFixVerifier<ReleaseInFinallyFixer>.VerifyAsync(compilationEnd: true, before: """
        class D
        {
            private Errno Copy(MigrateVma args) => args.EntryCount > 0 ? Errno.Ok : Errno.ENOMEM;
            [RequiresShared("args.Vma.Mm.MmapLock")]
            public Errno F(MigrateVma args)
            {
                var e = {|HMM1020:MigrateVma.Setup(args)|};
                if (e != Errno.Ok) return e;
                if (Copy(args) != Errno.Ok) return Errno.ENOMEM;
                MigrateVma.Pages(args);
                MigrateVma.Finalize(args);
                return Errno.Ok;
            }
        }
        """, after: """
        class D
        {
            private Errno Copy(MigrateVma args) => args.EntryCount > 0 ? Errno.Ok : Errno.ENOMEM;
            [RequiresShared("args.Vma.Mm.MmapLock")]
            public Errno F(MigrateVma args)
            {
                var e = MigrateVma.Setup(args);
                if (e != Errno.Ok) return e;
                try
                {
                    if (Copy(args) != Errno.Ok) return Errno.ENOMEM;
                    MigrateVma.Pages(args);
                }
                finally
                {
                    MigrateVma.Finalize(args);
                }

                return Errno.Ok;
            }
        }
        """);

    [Test]
    public Task Mm_put_moves_into_finally() => HmmFixVerifier<ReleaseInFinallyFixer>.VerifyAsync(compilationEnd: true, before: """
        class D
        {
            private AddressSpace _mm = null!;
            private Errno Work() => Errno.Ok;
            public Errno F()
            {
                if (!{|HMM1023:_mm.TryGet()|}) return Errno.EINVAL;
                if (Work() != Errno.Ok) return Errno.EFAULT;
                Work();
                _mm.Put();
                return Errno.Ok;
            }
        }
        """, after: """
        class D
        {
            private AddressSpace _mm = null!;
            private Errno Work() => Errno.Ok;
            public Errno F()
            {
                if (!_mm.TryGet()) return Errno.EINVAL;
                try
                {
                    if (Work() != Errno.Ok) return Errno.EFAULT;
                    Work();
                }
                finally
                {
                    _mm.Put();
                }

                return Errno.Ok;
            }
        }
        """);

    [Test]
    public Task Blocking_call_gets_a_blockable_guard() => HmmFixVerifier<BlockableGuardFixer>.VerifyAsync(compilationEnd: true, before: """
        [HmmDriver("d", UpdateLock = nameof(_update))]
        partial class G
        {
            private readonly KernelMutex _update = new("u");
            private readonly KernelMutex _other = new("o");
            [OnInvalidate]
            bool Inval(in NotifierRange range)
            {
                {|HMM1013:_other.Lock()|};
                _other.Unlock();
                return true;
            }
        }
        """, after: """
        [HmmDriver("d", UpdateLock = nameof(_update))]
        partial class G
        {
            private readonly KernelMutex _update = new("u");
            private readonly KernelMutex _other = new("o");
            [OnInvalidate]
            bool Inval(in NotifierRange range)
            {
                if (!range.Blockable) return false;
                _other.Lock();
                _other.Unlock();
                return true;
            }
        }
        """);

    [Test]
    public Task Device_update_is_wrapped_in_read_retry() => HmmFixVerifier<ReadRetryGuardFixer>.VerifyAsync("""
        class D
        {
            private readonly KernelMutex _update = new("u");
            private readonly DevicePageTable _pt = new();
            [RequiresShared("r.Notifier.Mm.MmapLock")]
            public void F(HmmRange r)
            {
                r.NotifierSeq = r.Notifier!.ReadBegin();
                if (r.Fault() != Errno.Ok) return;
                _update.Lock();
                try
                {
                    {|HMM1012:_pt.Install(r.Start, r.HmmPfns)|};
                }
                finally { _update.Unlock(); }
            }
        }
        """, """
        class D
        {
            private readonly KernelMutex _update = new("u");
            private readonly DevicePageTable _pt = new();
            [RequiresShared("r.Notifier.Mm.MmapLock")]
            public void F(HmmRange r)
            {
                r.NotifierSeq = r.Notifier!.ReadBegin();
                if (r.Fault() != Errno.Ok) return;
                _update.Lock();
                try
                {
                    if (!r.Notifier!.ReadRetry(r.NotifierSeq))
                    {
                        _pt.Install(r.Start, r.HmmPfns);
                    }
                }
                finally { _update.Unlock(); }
            }
        }
        """);

    [Test]
    public Task Put_in_a_dsl_invalidate_becomes_the_deferred_put() => HmmFixVerifier<DeferredMmPutFixer>.VerifyAsync(compilationEnd: true, before: """
        [HmmDriver("d", UpdateLock = nameof(_update))]
        partial class G
        {
            private readonly KernelMutex _update = new("u");
            private AddressSpace _mm = null!;
            [OnInvalidate] void Inval(in NotifierRange range) { if (range.Blockable) {|HMM1017:_mm.Put()|}; }
        }
        """, after: """
        [HmmDriver("d", UpdateLock = nameof(_update))]
        partial class G
        {
            private readonly KernelMutex _update = new("u");
            private AddressSpace _mm = null!;
            [OnInvalidate] void Inval(in NotifierRange range) { if (range.Blockable) _mm.PutDeferred(); }
        }
        """);

    [Test]
    public Task Put_under_the_update_lock_becomes_the_deferred_put() => HmmFixVerifier<DeferredMmPutFixer>.VerifyAsync(compilationEnd: true, before: """
        class D : IIntervalNotifierOps
        {
            private readonly KernelMutex _update = new("u");
            private AddressSpace _mm = null!;
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            {
                if (range.Blockable) _update.Lock();
                else if (!_update.TryLock()) return false;
                try { n.SetSeq(seq); return true; }
                finally { _update.Unlock(); }
            }
            public void Work()
            {
                if (!_mm.TryGet()) return;
                _update.Lock();
                try { }
                finally { {|HMM1017:_mm.Put()|}; _update.Unlock(); }
            }
        }
        """, after: """
        class D : IIntervalNotifierOps
        {
            private readonly KernelMutex _update = new("u");
            private AddressSpace _mm = null!;
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            {
                if (range.Blockable) _update.Lock();
                else if (!_update.TryLock()) return false;
                try { n.SetSeq(seq); return true; }
                finally { _update.Unlock(); }
            }
            public void Work()
            {
                if (!_mm.TryGet()) return;
                _update.Lock();
                try { }
                finally { _mm.PutDeferred(); _update.Unlock(); }
            }
        }
        """);
    [Test]
    public Task Late_table_moves_before_the_insert() => HmmFixVerifier<InitBeforeInsertFixer>.VerifyAsync(compilationEnd: true, before: """
        class D : IIntervalNotifierOps
        {
            private readonly IntervalNotifier _n;
            private DevicePageTable _pt;
            public D(AddressSpace mm, int size)
            {
                _n = new IntervalNotifier(this);
                var e = _n.Insert(mm, 0, 1UL << 30);
                if (e != Errno.Ok) throw new InvalidOperationException();
                {|HMM1035:_pt = new DevicePageTable()|};
            }
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq) { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); return true; }
            public void Close() => _n.Remove();
        }
        """, after: """
        class D : IIntervalNotifierOps
        {
            private readonly IntervalNotifier _n;
            private DevicePageTable _pt;
            public D(AddressSpace mm, int size)
            {
                _n = new IntervalNotifier(this);
                _pt = new DevicePageTable();
                var e = _n.Insert(mm, 0, 1UL << 30);
                if (e != Errno.Ok) throw new InvalidOperationException();
            }
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq) { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); return true; }
            public void Close() => _n.Remove();
        }
        """);
}
