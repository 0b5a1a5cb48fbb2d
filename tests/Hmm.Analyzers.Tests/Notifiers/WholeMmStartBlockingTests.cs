using Hmm.Analyzers.CodeFixes.Flow;
using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>
/// HMM1013 in the whole-mm mmu_notifier's invalidate_range_start / _end (contract
/// [NotifierCallback(NonBlockableRange = true)]): a sleeping call not behind a range.Blockable
/// check — directly or two helpers deep — fires; guarded, non-sleeping and helper-guarded calls do
/// not; no interval-notifier rule (SetSeq, bool result) comes with the context. The guard fix
/// refuses the range with -EAGAIN.
/// </summary>
public sealed class WholeMmStartBlockingTests
{
    private const string Head = """
        sealed class SvmOps : MmuNotifierOps
        {
            private readonly KernelMutex _update = new("svm.update");
            private void Wait() => System.Threading.Thread.Sleep(1);
            private void Flush() => Wait();

        """;

    private static Task Verify(string members) => HmmVerifier.VerifyAsync(Head + members + "}\n");

    // ---- fire ---------------------------------------------------------------------------------------

    [Test]
    public Task Unguarded_lock_in_a_whole_mm_start_fires() => Verify("""
            public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
            {
                {|HMM1013:_update.Lock()|};
                _update.Unlock();
                return Errno.Ok;
            }

        """);

    [Test]
    public Task Sleep_two_helpers_deep_in_a_whole_mm_start_fires() => Verify("""
            public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
            {
                {|HMM1013:Flush()|};
                return Errno.Ok;
            }

        """);

    [Test]
    public Task Unguarded_lock_in_a_whole_mm_end_fires() => Verify("""
            public override void InvalidateRangeEnd(MmuNotifier subscription, in NotifierRange range)
            {
                {|HMM1013:_update.Lock()|};
                _update.Unlock();
            }

        """);

    [Test]
    public Task Guard_after_the_sleep_fires() => Verify("""
            public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
            {
                {|HMM1013:Flush()|};
                if (!range.Blockable) return Errno.EAGAIN;
                return Errno.Ok;
            }

        """);

    // ---- silent -------------------------------------------------------------------------------------

    [Test]
    public Task Lock_behind_a_blockable_check_is_silent() => Verify("""
            public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
            {
                if (!range.Blockable) return Errno.EAGAIN;
                _update.Lock();
                _update.Unlock();
                return Errno.Ok;
            }

        """);

    [Test]
    public Task Sleep_two_helpers_deep_inside_a_blockable_branch_is_silent() => Verify("""
            public override void InvalidateRangeEnd(MmuNotifier subscription, in NotifierRange range)
            {
                if (range.Blockable) Flush();
            }

        """);

    [Test]
    public Task Trylock_refusing_the_range_is_silent() => Verify("""
            public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
            {
                if (!_update.TryLock()) return Errno.EAGAIN;
                _update.Unlock();
                return Errno.Ok;
            }

        """);

    [Test]
    public Task Sleep_in_a_young_query_without_a_range_is_silent() => Verify("""
            public override bool ClearYoung(MmuNotifier subscription, AddressSpace mm, ulong start, ulong end)
            {
                Flush();
                return false;
            }

        """);

    // ---- the guard fix ----------------------------------------------------------------------------------

    [Test]
    public Task Guard_fix_refuses_a_non_blockable_start_with_eagain() => HmmFixVerifier<BlockableGuardFixer>.VerifyAsync(compilationEnd: true, before: Head + """
            public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
            {
                {|HMM1013:_update.Lock()|};
                _update.Unlock();
                return Errno.Ok;
            }
        }
        """, after: Head + """
            public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
            {
                if (!range.Blockable) return Errno.EAGAIN;
                _update.Lock();
                _update.Unlock();
                return Errno.Ok;
            }
        }
        """);
}
