using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>HMM1036: a notifier callback (or a holder of a lock a callback takes) waits for work that may drop an mm reference or take U.</summary>
public sealed class WaitsForWorkTests
{
    private const string Ops = """
        class D : IIntervalNotifierOps
        {
            private readonly KernelMutex _update = new("d.update");
            private readonly AddressSpace _mm;
            public D(AddressSpace mm) => _mm = mm;

        """;

    [Test]
    public Task Flush_in_a_blockable_invalidate_fires() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
            {
                if (!range.Blockable) return false;
                {|HMM1036:_mm.Machine.SystemWork.Flush()|};
                _update.Lock();
                try { notifier.SetSeq(curSeq); return true; }
                finally { _update.Unlock(); }
            }
        }
        """);

    [Test]
    public Task Flush_two_helpers_deep_from_the_invalidate_fires() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
            {
                if (!range.Blockable) return false;
                {|HMM1036:Drain()|};
                _update.Lock();
                try { notifier.SetSeq(curSeq); return true; }
                finally { _update.Unlock(); }
            }
            private void Drain() => Quiesce();
            private void Quiesce() => _mm.Machine.SystemWork.Flush();
        }
        """);

    [Test]
    public Task Flush_holding_the_update_lock_fires() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
            {
                if (range.Blockable) _update.Lock();
                else if (!_update.TryLock()) return false;
                try { notifier.SetSeq(curSeq); return true; }
                finally { _update.Unlock(); }
            }
            public void Unbind()
            {
                _update.Lock();
                try { {|HMM1036:_mm.Machine.SystemWork.Flush()|}; }
                finally { _update.Unlock(); }
            }
        }
        """);

    [Test]
    public Task Dsl_release_callback_flushing_fires() => HmmVerifier.VerifyAsync("""
        [HmmDriver("w", UpdateLock = nameof(_update))]
        public partial class W
        {
            private readonly KernelMutex _update = new("w.update");
            private AddressSpace _mm = null!;
            [OnRelease] void Release() => {|HMM1036:_mm.Machine.SystemWork.Flush()|};
        }
        """);

    [Test]
    public Task Flush_after_unlock_outside_callbacks_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
            {
                if (range.Blockable) _update.Lock();
                else if (!_update.TryLock()) return false;
                try { notifier.SetSeq(curSeq); return true; }
                finally { _update.Unlock(); }
            }
            public void Unbind()
            {
                _update.Lock();
                try { Detach(); }
                finally { _update.Unlock(); }
                _mm.Machine.SystemWork.Flush();
            }
            private void Detach() { }
        }
        """);

    [Test]
    public Task Queue_depth_read_in_a_callback_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            public int Deferred;
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
            {
                if (range.Blockable) _update.Lock();
                else if (!_update.TryLock()) return false;
                try { notifier.SetSeq(curSeq); Deferred = _mm.Machine.SystemWork.Pending; return true; }
                finally { _update.Unlock(); }
            }
        }
        """);

    [Test]
    public Task Helper_that_flushes_called_only_outside_callbacks_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
            {
                if (range.Blockable) _update.Lock();
                else if (!_update.TryLock()) return false;
                try { notifier.SetSeq(curSeq); return true; }
                finally { _update.Unlock(); }
            }
            private void Drain() => _mm.Machine.SystemWork.Flush();
            public void Close() { Drain(); _mm.Put(); }
        }
        """);
}
