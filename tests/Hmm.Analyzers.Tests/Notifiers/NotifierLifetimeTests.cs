using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>Notifier lifetime: HMM1031 (HMM-R12, insert without remove), HMM1032 (use after remove).</summary>
public sealed class NotifierLifetimeTests
{
    private const string Ops = """
        class D : IIntervalNotifierOps
        {
            private readonly IntervalNotifier _n;
            private readonly AddressSpace _mm;
            public D(AddressSpace mm) { _mm = mm; _n = new IntervalNotifier(this); }
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq) { notifier.SetSeq(curSeq); return true; }

        """;

    // ---- HMM1031 ----
    [Test]
    public Task Field_notifier_never_removed_fires() => HmmVerifier.VerifyAsync(Ops + """
            public Errno Bind(ulong start, ulong length) => {|HMM1031:_n.Insert(_mm, start, length)|};
            public void Release() { }
        }
        """);

    [Test]
    public Task Local_notifier_never_removed_fires() => HmmVerifier.VerifyAsync(Ops + """
            public ulong Probe(ulong start)
            {
                var n = new IntervalNotifier(this);
                if ({|HMM1031:n.Insert(_mm, start, 4096)|} != Errno.Ok) return 0;
                return n.ReadBegin();
            }
        }
        """);

    [Test]
    public Task Field_notifier_inserted_two_helpers_deep_never_removed_fires() => HmmVerifier.VerifyAsync(Ops + """
            private Errno Inner(ulong s) => {|HMM1031:_n.Insert(_mm, s, 4096)|};
            private Errno Outer(ulong s) => Inner(s);
            public Errno Bind(ulong s) => Outer(s);
        }
        """);

    [Test]
    public Task Field_notifier_removed_on_release_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            public Errno Bind(ulong start, ulong length) => _n.Insert(_mm, start, length);
            private void Teardown() => _n?.Remove();
            public void Release() => Teardown();
        }
        """);

    [Test]
    public Task Local_notifier_removed_in_finally_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            public ulong Probe(ulong start)
            {
                var n = new IntervalNotifier(this);
                if (n.Insert(_mm, start, 4096) != Errno.Ok) return 0;
                try { return n.ReadBegin(); }
                finally { n.Remove(); }
            }
        }
        """);

    [Test]
    public Task Notifier_handed_to_a_registry_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            private readonly System.Collections.Generic.List<IntervalNotifier> _all = new();
            public void Track(ulong start)
            {
                var n = new IntervalNotifier(this);
                if (n.Insert(_mm, start, 4096) == Errno.Ok) _all.Add(n);
            }
            public void Release() { foreach (var n in _all) n.Remove(); }
        }
        """);

    // ---- HMM1032 ----
    [Test]
    public Task Read_begin_after_remove_fires() => HmmVerifier.VerifyAsync(Ops + """
            public ulong F() { _n.Remove(); return {|HMM1032:_n.ReadBegin()|}; }
        }
        """);

    [Test]
    public Task Remove_twice_on_an_error_path_fires() => HmmVerifier.VerifyAsync(Ops + """
            public void Close(bool failed)
            {
                if (failed) _n.Remove();
                else Flush();
                if (failed) return;
                _n.Remove();
            }
            public void Abort() { _n.Remove(); {|HMM1032:_n.Remove()|}; }
            private void Flush() { }
        }
        """);

    [Test]
    public Task Read_retry_after_remove_in_a_retry_loop_fires() => HmmVerifier.VerifyAsync(Ops + """
            public bool F(ulong seq)
            {
                var n = new IntervalNotifier(this);
                if (n.Insert(_mm, 0, 4096) != Errno.Ok) return false;
                n.Remove();
                return {|HMM1032:n.ReadRetry(seq)|};
            }
        }
        """);

    [Test]
    public Task Remove_then_insert_again_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            public ulong F(ulong s) { _n.Remove(); if (_n.Insert(_mm, s, 4096) != Errno.Ok) return 0; try { return _n.ReadBegin(); } finally { _n.Remove(); } }
        }
        """);

    [Test]
    public Task Remove_on_one_branch_use_on_the_other_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            public ulong F(bool done) { if (done) { _n.Remove(); return 0; } return _n.ReadBegin(); }
        }
        """);

    [Test]
    public Task Fresh_notifier_after_remove_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            public ulong F(ulong s)
            {
                var n = new IntervalNotifier(this);
                if (n.Insert(_mm, s, 4096) != Errno.Ok) return 0;
                n.Remove();
                n = new IntervalNotifier(this);
                if (n.Insert(_mm, s, 8192) != Errno.Ok) return 0;
                try { return n.ReadBegin(); } finally { n.Remove(); }
            }
        }
        """);
}
