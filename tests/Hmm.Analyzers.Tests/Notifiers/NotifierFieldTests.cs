using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>HMM1035: a field the notifier callback reads is assigned after the insert, or torn down before the remove without U.</summary>
public sealed class NotifierFieldTests
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
            public void Close() { _n.Remove(); }

        """;

    // ---- assigned after the insert ----
    [Test]
    public Task Table_assigned_after_insert_in_the_constructor_fires() => HmmVerifier.VerifyAsync("""
        class D : IIntervalNotifierOps
        {
        """ + Callback + """
            public D(AddressSpace mm)
            {
                _n = new IntervalNotifier(this);
                if (_n.Insert(mm, 0, 1UL << 30) != Errno.Ok) throw new InvalidOperationException();
                {|HMM1035:_pt = new DevicePageTable()|};
            }
        }
        """);

    [Test]
    public Task Insert_and_store_two_helpers_deep_fires() => HmmVerifier.VerifyAsync("""
        class D : IIntervalNotifierOps
        {
        """ + Callback + """
            public D(AddressSpace mm)
            {
                _n = new IntervalNotifier(this);
                Register(mm);
                {|HMM1035:InitTables()|};
            }
            private void Register(AddressSpace mm) => Watch(mm);
            private void Watch(AddressSpace mm) => _n.Insert(mm, 0, 1UL << 30);
            private void InitTables() => CreateTable();
            private void CreateTable() => _pt = new DevicePageTable();
        }
        """);

    [Test]
    public Task Separate_ops_object_forwarding_to_the_driver_fires() => HmmVerifier.VerifyAsync("""
        sealed class Ops(D d) : IIntervalNotifierOps
        {
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq) => d.Invalidate(notifier, range, curSeq);
        }
        sealed class D
        {
            private readonly KernelMutex _update = new("d.update");
            private readonly IntervalNotifier _n;
            private DevicePageTable _pt;
            public D(AddressSpace mm, bool big)
            {
                _n = new IntervalNotifier(new Ops(this));
                _n.Insert(mm, 0, 1UL << 30);
                if (big) {|HMM1035:_pt = new DevicePageTable()|};
                else {|HMM1035:_pt = new DevicePageTable()|};
            }
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
            {
                if (range.Blockable) _update.Lock();
                else if (!_update.TryLock()) return false;
                try { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); return true; }
                finally { _update.Unlock(); }
            }
            public void Close() => _n.Remove();
        }
        """);

    // ---- torn down while inserted ----
    [Test]
    public Task Table_nulled_before_remove_fires() => HmmVerifier.VerifyAsync("""
        class D : IIntervalNotifierOps
        {
        """ + Callback + """
            public D(AddressSpace mm) { _pt = new DevicePageTable(); _n = new IntervalNotifier(this); _n.Insert(mm, 0, 1UL << 30); }
            public void Dispose()
            {
                {|HMM1035:_pt = null!|};
                _n.Remove();
            }
        }
        """);

    [Test]
    public Task Teardown_in_a_helper_two_deep_before_remove_fires() => HmmVerifier.VerifyAsync("""
        class D : IIntervalNotifierOps
        {
        """ + Callback + """
            public D(AddressSpace mm) { _pt = new DevicePageTable(); _n = new IntervalNotifier(this); _n.Insert(mm, 0, 1UL << 30); }
            public void Dispose()
            {
                {|HMM1035:DropTables()|};
                _n.Remove();
            }
            private void DropTables() => Forget();
            private void Forget() => _pt = null!;
        }
        """);

    // ---- silent ----
    [Test]
    public Task Everything_assigned_before_insert_is_silent() => HmmVerifier.VerifyAsync("""
        class D : IIntervalNotifierOps
        {
        """ + Callback + """
            private long _binds;
            public D(AddressSpace mm)
            {
                _pt = new DevicePageTable();
                _n = new IntervalNotifier(this);
                if (_n.Insert(mm, 0, 1UL << 30) != Errno.Ok) throw new InvalidOperationException();
                _binds = 1;   // not read by the callback
            }
        }
        """);

    [Test]
    public Task Teardown_after_remove_or_under_the_update_lock_is_silent() => HmmVerifier.VerifyAsync("""
        class D : IIntervalNotifierOps
        {
        """ + Callback + """
            public D(AddressSpace mm) { _pt = new DevicePageTable(); _n = new IntervalNotifier(this); _n.Insert(mm, 0, 1UL << 30); }
            public void Dispose()
            {
                _n.Remove();
                _pt = null!;
            }
            public void Reset()
            {
                _update.Lock();
                try { _pt = null!; _pt = new DevicePageTable(); }
                finally { _update.Unlock(); }
            }
        }
        """);

    [Test]
    public Task Teardown_after_a_helper_that_removes_is_silent() => HmmVerifier.VerifyAsync("""
        class D : IIntervalNotifierOps
        {
        """ + Callback + """
            public D(AddressSpace mm) { _pt = new DevicePageTable(); _n = new IntervalNotifier(this); _n.Insert(mm, 0, 1UL << 30); }
            public void Dispose()
            {
                Unbind();
                DropTables();
            }
            private void Unbind() => Close();
            private void DropTables() => _pt = null!;
        }
        """);

    [Test]
    public Task Rebind_with_the_table_kept_from_construction_is_silent() => HmmVerifier.VerifyAsync("""
        class D : IIntervalNotifierOps
        {
        """ + Callback + """
            private readonly AddressSpace _mm;
            public D(AddressSpace mm) { _mm = mm; _pt = new DevicePageTable(); _n = new IntervalNotifier(this); }
            public Errno Bind(ulong start, ulong length)
            {
                var e = _n.Insert(_mm, start, length);
                Binds++;
                return e;
            }
            public int Binds { get; private set; }
        }
        """);
    [Test]
    public Task State_published_after_a_later_insert_or_over_an_initializer_is_silent() => HmmVerifier.VerifyAsync("""
        class D : IIntervalNotifierOps
        {
            private readonly AddressSpace _mm;
            private readonly IntervalNotifier _n;
            private int _state;
            private long[] _stats = new long[4];
            public D(AddressSpace mm) { _mm = mm; _n = new IntervalNotifier(this); _state = 0; }
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
            {
                notifier.SetSeq(curSeq);
                if (_state == 1) _stats[0]++;
                return true;
            }
            public Errno Bind(ulong start, ulong length)
            {
                var e = _n.Insert(_mm, start, length);
                _state = 1;   // constructed with 0; the callback sees 0 or 1, both valid
                _stats = new long[8];
                return e;
            }
            public void Close() => _n.Remove();
        }
        """);
}
