using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>HMM1035 across `: this(...)` constructor chains and teardowns inside a finally.</summary>
public sealed class NotifierFieldChainTests
{
    private const string Callback = """
            private readonly KernelMutex _update = new("d.update");
            private IntervalNotifier _n;
            private DevicePageTable _pt;
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
            {
                if (range.Blockable) _update.Lock();
                else if (!_update.TryLock()) return false;
                try { notifier.SetSeq(curSeq); Zap(range.Start, range.End); return true; }
                finally { _update.Unlock(); }
            }
            private void Zap(ulong s, ulong e) => Clear(s, e);
            private void Clear(ulong s, ulong e) => _pt.Clear(s, e);

        """;

    private static Task Verify(string members) => HmmVerifier.VerifyAsync("class D : IIntervalNotifierOps\n{\n" + Callback + members + "}\n");

    [Test]
    public Task Chained_constructor_inserts_then_the_outer_one_assigns_fires() => Verify("""
            public D(AddressSpace mm) : this(mm, 0)
            {
                {|HMM1035:_pt = new DevicePageTable()|};
            }
            private D(AddressSpace mm, int flags)
            {
                _n = new IntervalNotifier(this);
                _n.Insert(mm, 0, 1UL << 30);
            }
            public void Close() { _n.Remove(); }

        """);

    [Test]
    public Task Chained_constructor_assigns_then_the_outer_one_inserts_is_silent() => Verify("""
            public D(AddressSpace mm) : this()
            {
                _n = new IntervalNotifier(this);
                _n.Insert(mm, 0, 1UL << 30);
            }
            private D() { _pt = new DevicePageTable(); }
            public void Close() { _n.Remove(); }

        """);

    [Test]
    public Task Teardown_in_a_finally_before_remove_fires() => Verify("""
            public D(AddressSpace mm)
            {
                _pt = new DevicePageTable();
                _n = new IntervalNotifier(this);
                _n.Insert(mm, 0, 1UL << 30);
            }
            public void Close(bool flush)
            {
                try { if (flush) Zap(0, 1); }
                finally { {|HMM1035:_pt = null!|}; }
                _n.Remove();
            }

        """);

    [Test]
    public Task Teardown_in_a_finally_after_remove_is_silent() => Verify("""
            public D(AddressSpace mm)
            {
                _pt = new DevicePageTable();
                _n = new IntervalNotifier(this);
                _n.Insert(mm, 0, 1UL << 30);
            }
            public void Close()
            {
                try { _n.Remove(); }
                finally { _pt = null!; }
            }

        """);

    [Test]
    public Task Chained_constructor_inserting_two_helpers_deep_fires() => Verify("""
            public D(AddressSpace mm) : this(mm, 0)
            {
                {|HMM1035:_pt = new DevicePageTable()|};
            }
            private D(AddressSpace mm, int flags)
            {
                _n = new IntervalNotifier(this);
                Register(mm);
            }
            private void Register(AddressSpace mm) => Watch(mm);
            private void Watch(AddressSpace mm) => _n.Insert(mm, 0, 1UL << 30);
            public void Close() { _n.Remove(); }

        """);

    [Test]
    public Task Two_level_chain_then_a_helper_store_fires() => Verify("""
            public D(AddressSpace mm) : this(mm, 0)
            {
                {|HMM1035:InitTables()|};
            }
            private D(AddressSpace mm, int flags) : this(mm, flags, 0) { }
            private D(AddressSpace mm, int flags, int depth)
            {
                _n = new IntervalNotifier(this);
                _n.Insert(mm, 0, 1UL << 30);
            }
            private void InitTables() => CreateTable();
            private void CreateTable() => _pt = new DevicePageTable();
            public void Close() { _n.Remove(); }

        """);

    [Test]
    public Task Chained_constructor_with_everything_before_its_insert_is_silent() => Verify("""
            private int _flags;
            public D(AddressSpace mm) : this(mm, 0)
            {
                _flags = 1;
            }
            private D(AddressSpace mm, int flags)
            {
                _pt = new DevicePageTable();
                _n = new IntervalNotifier(this);
                _n.Insert(mm, 0, 1UL << 30);
            }
            public void Close() { _n.Remove(); }

        """);

    [Test]
    public Task Chain_to_a_constructor_that_assigns_through_helpers_is_silent() => Verify("""
            public D(AddressSpace mm) : this()
            {
                _n = new IntervalNotifier(this);
                _n.Insert(mm, 0, 1UL << 30);
            }
            private D() => InitTables();
            private void InitTables() => CreateTable();
            private void CreateTable() => _pt = new DevicePageTable();
            public void Close() { _n.Remove(); }

        """);

    [Test]
    public Task Teardown_two_helpers_deep_in_a_finally_fires() => Verify("""
            public D(AddressSpace mm)
            {
                _pt = new DevicePageTable();
                _n = new IntervalNotifier(this);
                _n.Insert(mm, 0, 1UL << 30);
            }
            public void Close(bool flush)
            {
                try { if (flush) Zap(0, 1); }
                finally { {|HMM1035:Drop()|}; }
                _n.Remove();
            }
            private void Drop() => Free();
            private void Free() => _pt = null!;

        """);

    [Test]
    public Task Teardown_in_a_finally_on_an_early_return_fires() => Verify("""
            public D(AddressSpace mm)
            {
                _pt = new DevicePageTable();
                _n = new IntervalNotifier(this);
                _n.Insert(mm, 0, 1UL << 30);
            }
            public void Close(bool busy)
            {
                try
                {
                    if (busy) return;
                    _n.Remove();
                }
                finally { {|HMM1035:_pt = null!|}; }
            }

        """);

    [Test]
    public Task Teardown_in_a_finally_under_the_update_lock_is_silent() => Verify("""
            public D(AddressSpace mm)
            {
                _pt = new DevicePageTable();
                _n = new IntervalNotifier(this);
                _n.Insert(mm, 0, 1UL << 30);
            }
            public void Close()
            {
                _update.Lock();
                try { Zap(0, 1); }
                finally { _pt = null!; _update.Unlock(); }
                _n.Remove();
            }

        """);

    [Test]
    public Task Teardown_helper_in_a_finally_after_remove_is_silent() => Verify("""
            public D(AddressSpace mm)
            {
                _pt = new DevicePageTable();
                _n = new IntervalNotifier(this);
                _n.Insert(mm, 0, 1UL << 30);
            }
            public void Close()
            {
                _n.Remove();
                try { Zap(0, 1); }
                finally { Drop(); }
            }
            private void Drop() => Free();
            private void Free() => _pt = null!;

        """);
}
