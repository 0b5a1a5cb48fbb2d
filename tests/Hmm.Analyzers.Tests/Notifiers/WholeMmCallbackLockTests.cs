using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>
/// HMM-R03/R04 (HMM1011) with a whole-mm mmu_notifier: a lock its invalidate_range_start or _end
/// takes (directly or two helpers deep) is a lock an invalidate callback takes, so ReadBegin or
/// hmm_range_fault while holding it — directly or two helpers deep — fires. Locks taken only in
/// release / free_notifier (no invalidation window), and a start lock released before the fault,
/// stay silent.
/// </summary>
public sealed class WholeMmCallbackLockTests
{
    private const string Head = """
        sealed class SvmOps : MmuNotifierOps
        {
            private readonly KernelMutex _svm = new("svm");
            private readonly KernelMutex _teardown = new("svm.teardown");
            private readonly KernelMutex _freeing = new("svm.free");
            private IntervalNotifier _n = null!;
            private AddressSpace _mm = null!;
            private long _count;

            public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
            {
                if (!range.Blockable) return Errno.EAGAIN;
                _svm.Lock();
                try { _count++; }
                finally { _svm.Unlock(); }
                return Errno.Ok;
            }

            public override void Release(MmuNotifier subscription, AddressSpace mm)
            {
                _teardown.Lock();
                try { _count = 0; }
                finally { _teardown.Unlock(); }
            }

            public override void FreeNotifier(MmuNotifier subscription)
            {
                _freeing.Lock();
                try { _count = -1; }
                finally { _freeing.Unlock(); }
            }

            private void Refresh(HmmRange r) => Restart(r);
            private void Restart(HmmRange r) => r.NotifierSeq = _n.ReadBegin();

        """;

    private static Task Verify(string members) => HmmVerifier.VerifyAsync(Head + members + "}\n");

    // ---- fire ---------------------------------------------------------------------------------------

    [Test]
    public Task ReadBegin_holding_a_lock_the_whole_mm_start_takes_fires() => Verify("""
            public void Map(HmmRange r)
            {
                _svm.Lock();
                try { r.NotifierSeq = {|HMM1011:_n.ReadBegin()|}; }
                finally { _svm.Unlock(); }
            }

        """);

    [Test]
    public Task ReadBegin_two_helpers_deep_holding_the_start_lock_fires() => Verify("""
            public void Map(HmmRange r)
            {
                _svm.Lock();
                try { {|HMM1011:Refresh(r)|}; }
                finally { _svm.Unlock(); }
            }

        """);

    [Test]
    public Task Fault_holding_a_lock_the_whole_mm_end_takes_two_helpers_deep_fires() => Verify("""
            private readonly KernelMutex _pt = new("svm.pt");
            public override void InvalidateRangeEnd(MmuNotifier subscription, in NotifierRange range)
            {
                if (range.Blockable) Zap();
            }
            private void Zap() => ZapLocked();
            private void ZapLocked() { _pt.Lock(); _pt.Unlock(); }

            public Errno Map(HmmRange r)
            {
                _mm.MmapLock.ReadLock();
                try
                {
                    _pt.Lock();
                    try { return {|HMM1011:r.Fault()|}; }
                    finally { _pt.Unlock(); }
                }
                finally { _mm.MmapLock.ReadUnlock(); }
            }

        """);

    // ---- silent -------------------------------------------------------------------------------------

    [Test]
    public Task ReadBegin_holding_a_lock_taken_only_in_release_is_silent() => Verify("""
            public void Map(HmmRange r)
            {
                _teardown.Lock();
                try { r.NotifierSeq = _n.ReadBegin(); }
                finally { _teardown.Unlock(); }
            }

        """);

    [Test]
    public Task ReadBegin_holding_a_lock_taken_only_in_free_notifier_is_silent() => Verify("""
            public void Map(HmmRange r)
            {
                _freeing.Lock();
                try { Refresh(r); }
                finally { _freeing.Unlock(); }
            }

        """);

    [Test]
    public Task Start_lock_released_before_the_fault_is_silent() => Verify("""
            public Errno Map(HmmRange r)
            {
                _svm.Lock();
                try { _count++; }
                finally { _svm.Unlock(); }
                r.NotifierSeq = _n.ReadBegin();
                _mm.MmapLock.ReadLock();
                try { return r.Fault(); }
                finally { _mm.MmapLock.ReadUnlock(); }
            }

        """);
}
