using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Locking;

/// <summary>HMM1001–HMM1006: guarded members, requires/excludes, balance on every path, lock order.</summary>
public sealed class LockDisciplineTests
{
    private const string Guarded = """
        class D
        {
            private readonly KernelMutex _m = new("d");
            private readonly RwSemaphore _rw = new("rw");
            [GuardedBy(nameof(_m))] private int _count;
            [GuardedBy(nameof(_rw))] private int _shared;

        """;

    // ---- HMM1001 ----
    [Test]
    public Task Guarded_write_without_lock_fires() => HmmVerifier.VerifyAsync(Guarded + """
            public void F() { {|HMM1001:_count|} = 1; }
        }
        """);

    [Test]
    public Task Guarded_write_under_shared_lock_fires() => HmmVerifier.VerifyAsync(Guarded + """
            public void F() { _rw.ReadLock(); try { {|HMM1001:_shared|} = 2; } finally { _rw.ReadUnlock(); } }
        }
        """);

    [Test]
    public Task Guarded_access_two_private_helpers_deep_fires_at_the_public_call() => HmmVerifier.VerifyAsync(Guarded + """
            private int Inner() => _count;
            private int Outer() => Inner() + 1;
            public int F() => {|HMM1001:Outer()|};
        }
        """);

    [Test]
    public Task Guarded_read_after_unlock_fires() => HmmVerifier.VerifyAsync(Guarded + """
            public int F() { _m.Lock(); _m.Unlock(); return {|HMM1001:_count|}; }
        }
        """);

    [Test]
    public Task Guarded_access_under_lock_is_silent() => HmmVerifier.VerifyAsync(Guarded + """
            public void F() { _m.Lock(); try { _count++; } finally { _m.Unlock(); } }
        }
        """);

    [Test]
    public Task Guarded_read_under_shared_lock_is_silent() => HmmVerifier.VerifyAsync(Guarded + """
            public int F() { _rw.ReadLock(); try { return _shared; } finally { _rw.ReadUnlock(); } }
        }
        """);

    [Test]
    public Task Guarded_access_two_helpers_deep_under_callers_lock_is_silent() => HmmVerifier.VerifyAsync(Guarded + """
            private int Inner() => _count;
            private int Outer() => Inner() + 1;
            public int F() { _m.Lock(); try { return Outer(); } finally { _m.Unlock(); } }
            public D() { _count = 0; }
            [Requires(nameof(_m))] public int G() => _count;
        }
        """);

    // ---- HMM1002 ----
    private const string Req = """
        class D
        {
            private readonly KernelMutex _m = new("d");
            [Requires(nameof(_m))] public void Step() { }

        """;

    [Test]
    public Task Requires_not_held_fires() => HmmVerifier.VerifyAsync(Req + """
            public void F() { {|HMM1002:Step()|}; }
        }
        """);

    [Test]
    public Task Requires_held_on_one_path_only_fires() => HmmVerifier.VerifyAsync(Req + """
            public void F(bool x) { if (x) {|HMM1004:_m.Lock()|}; {|HMM1002:Step()|}; if (x) _m.Unlock(); }   // correlated branches are not tracked (as in Clang)
        }
        """);

    [Test]
    public Task Requires_through_two_helpers_fires() => HmmVerifier.VerifyAsync(Req + """
            private void A() => Step();
            private void B() => A();
            public void F() { {|HMM1002:B()|}; }
        }
        """);

    [Test]
    public Task Requires_held_is_silent() => HmmVerifier.VerifyAsync(Req + """
            public void F() { _m.Lock(); try { Step(); } finally { _m.Unlock(); } }
        }
        """);

    [Test]
    public Task Requires_after_trylock_success_is_silent() => HmmVerifier.VerifyAsync(Req + """
            public bool F() { if (!_m.TryLock()) return false; try { Step(); return true; } finally { _m.Unlock(); } }
        }
        """);

    [Test]
    public Task Requires_through_two_helpers_under_lock_is_silent() => HmmVerifier.VerifyAsync(Req + """
            private void A() => Step();
            private void B() => A();
            public void F() { _m.Lock(); try { B(); } finally { _m.Unlock(); } }
        }
        """);

    // ---- HMM1003 ----
    private const string Excl = """
        class D
        {
            private readonly KernelMutex _m = new("d");
            [Excludes(nameof(_m))] public void TakesIt() { _m.Lock(); _m.Unlock(); }

        """;

    [Test]
    public Task Excludes_violated_fires() => HmmVerifier.VerifyAsync(Excl + """
            public void F() { _m.Lock(); try { {|HMM1003:TakesIt()|}; } finally { _m.Unlock(); } }
        }
        """);

    [Test]
    public Task Excludes_violated_on_some_path_fires() => HmmVerifier.VerifyAsync(Excl + """
            public void F(bool x) { if (x) {|HMM1004:_m.Lock()|}; {|HMM1003:TakesIt()|}; if (x) _m.Unlock(); }
        }
        """);

    [Test]
    public Task Notifier_insert_under_mmap_lock_fires() => HmmVerifier.VerifyAsync("""
        class D
        {
            public void F(IntervalNotifier n, AddressSpace mm) { mm.MmapLock.WriteLock(); try { {|HMM1003:n.Insert(mm, 0, 4096)|}; } finally { mm.MmapLock.WriteUnlock(); } }
        }
        """);

    [Test]
    public Task Excludes_respected_is_silent() => HmmVerifier.VerifyAsync(Excl + """
            public void F() { TakesIt(); _m.Lock(); _m.Unlock(); TakesIt(); }
        }
        """);

    [Test]
    public Task Notifier_insert_without_mmap_lock_is_silent() => HmmVerifier.VerifyAsync("""
        class D
        {
            public void F(IntervalNotifier n, AddressSpace mm) { n.Insert(mm, 0, 4096); }
            public void G(IntervalNotifier n, AddressSpace mm) { mm.MmapLock.WriteLock(); try { n.InsertLocked(mm, 0, 4096); } finally { mm.MmapLock.WriteUnlock(); } }
        }
        """);

    [Test]
    public Task Excludes_after_release_is_silent() => HmmVerifier.VerifyAsync(Excl + """
            public void F() { _m.Lock(); _m.Unlock(); TakesIt(); }
        }
        """);

    // ---- HMM1004 / HMM1005 ----
    private const string Plain = """
        class D
        {
            private readonly KernelMutex _m = new("d");
            private readonly SpinLock _s = new("s");

        """;

    [Test]
    public Task Lock_leaked_on_early_return_fires() => HmmVerifier.VerifyAsync(Plain + """
            public int F(bool x) { {|HMM1004:_m.Lock()|}; if (x) return 1; _m.Unlock(); return 0; }
        }
        """);

    [Test]
    public Task Lock_leaked_on_throw_fires() => HmmVerifier.VerifyAsync(Plain + """
            public void F(int x) { {|HMM1004:_s.Lock()|}; if (x < 0) throw new ArgumentException("x"); _s.Unlock(); }
        }
        """);

    [Test]
    public Task Trylock_leaked_fires() => HmmVerifier.VerifyAsync(Plain + """
            public bool F(bool x) { if ({|HMM1004:_m.TryLock()|}) { if (x) return true; _m.Unlock(); } return false; }
        }
        """);

    [Test]
    public Task Double_unlock_fires() => HmmVerifier.VerifyAsync(Plain + """
            public void F() { _m.Lock(); _m.Unlock(); {|HMM1005:_m.Unlock()|}; }
        }
        """);

    [Test]
    public Task Unlock_of_callers_lock_without_releases_fires() => HmmVerifier.VerifyAsync(Plain + """
            public void F() { {|HMM1005:_s.Unlock()|}; }
        }
        """);

    [Test]
    public Task Unlock_after_failed_trylock_fires() => HmmVerifier.VerifyAsync(Plain + """
            public void F() { if (!_m.TryLock()) { {|HMM1005:_m.Unlock()|}; return; } _m.Unlock(); }
        }
        """);

    [Test]
    public Task Balanced_try_finally_is_silent() => HmmVerifier.VerifyAsync(Plain + """
            public int F(bool x) { _m.Lock(); try { if (x) return 1; return 0; } finally { _m.Unlock(); } }
        }
        """);

    [Test]
    public Task Declared_acquire_and_release_helpers_are_silent() => HmmVerifier.VerifyAsync(Plain + """
            [Acquires(nameof(_m))] private void Take() => _m.Lock();
            [Releases(nameof(_m))] private void Drop() => _m.Unlock();
            public void F() { Take(); try { } finally { Drop(); } }
        }
        """);

    [Test]
    public Task Blockable_or_trylock_pattern_is_silent() => HmmVerifier.VerifyAsync(Plain + """
            public bool F(bool blockable) { if (blockable) _m.Lock(); else if (!_m.TryLock()) return false; try { return true; } finally { _m.Unlock(); } }
        }
        """);

    // ---- HMM1006 ----
    private const string Two = """
        class D
        {
            private readonly KernelMutex _a = new("a");
            private readonly KernelMutex _b = new("b");

        """;

    [Test]
    public Task Opposite_nesting_in_two_methods_fires_once_with_both_sites() => HmmVerifier.VerifyAsync(Two + """
            public void F() { _a.Lock(); {|HMM1006:_b.Lock()|}; _b.Unlock(); _a.Unlock(); }
            public void G() { _b.Lock(); _a.Lock(); _a.Unlock(); _b.Unlock(); }
        }
        """);

    [Test]
    public Task Nesting_against_declared_order_fires() => HmmVerifier.VerifyAsync("""
        class D
        {
            private readonly KernelMutex _a = new("a");
            [AcquiredAfter(nameof(_a))] private readonly KernelMutex _b = new("b");
            public void G() { _b.Lock(); {|HMM1006:_a.Lock()|}; _a.Unlock(); _b.Unlock(); }
        }
        """);

    [Test]
    public Task Nesting_through_two_helpers_fires() => HmmVerifier.VerifyAsync(Two + """
            private void TakeA() { _a.Lock(); _a.Unlock(); }
            private void Helper() => TakeA();
            public void F() { _a.Lock(); {|HMM1006:_b.Lock()|}; _b.Unlock(); _a.Unlock(); }
            public void G() { _b.Lock(); try { Helper(); } finally { _b.Unlock(); } }
        }
        """);

    [Test]
    public Task Relock_of_held_mutex_fires() => HmmVerifier.VerifyAsync(Two + """
            public void F() { _a.Lock(); {|HMM1006:_a.Lock()|}; _a.Unlock(); }
        }
        """);

    [Test]
    public Task Consistent_nesting_is_silent() => HmmVerifier.VerifyAsync(Two + """
            public void F() { _a.Lock(); _b.Lock(); _b.Unlock(); _a.Unlock(); }
            public void G() { _a.Lock(); try { _b.Lock(); _b.Unlock(); } finally { _a.Unlock(); } }
        }
        """);

    [Test]
    public Task Sequential_locks_are_silent() => HmmVerifier.VerifyAsync(Two + """
            public void F() { _a.Lock(); _a.Unlock(); _b.Lock(); _b.Unlock(); }
            public void G() { _b.Lock(); _b.Unlock(); _a.Lock(); _a.Unlock(); }
        }
        """);

    [Test]
    public Task Nesting_in_declared_order_through_helpers_is_silent() => HmmVerifier.VerifyAsync("""
        class D
        {
            private readonly KernelMutex _a = new("a");
            [AcquiredAfter(nameof(_a))] private readonly KernelMutex _b = new("b");
            private void TakeB() { _b.Lock(); _b.Unlock(); }
            private void Helper() => TakeB();
            public void G() { _a.Lock(); try { Helper(); } finally { _a.Unlock(); } }
        }
        """);
}
