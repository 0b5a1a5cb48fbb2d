using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>Callback rules: HMM1013–HMM1017, HMM1019, HMM1021, HMM1024, in hand-written ops and DSL callbacks.</summary>
public sealed class CallbackRuleTests
{
    private const string Ops = """
        class D : IIntervalNotifierOps
        {
            private readonly KernelMutex _update = new("u");
            private readonly SpinLock _spin = new("s");
            private readonly DevicePageTable _pt = new();
            private AddressSpace _mm = null!;
            private IntervalNotifier _other = null!;

        """;

    private const string Dsl = """
        [HmmDriver("d", UpdateLock = nameof(_update))]
        partial class G
        {
            private readonly KernelMutex _update = new("u");
            private readonly KernelMutex _other = new("o");
            private AddressSpace _mm = null!;
            private IntervalNotifier _n = null!;

        """;

    // ---- HMM1013 ----
    [Test]
    public Task Unguarded_lock_in_invalidate_fires() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            { {|HMM1013:_update.Lock()|}; try { n.SetSeq(seq); return true; } finally { _update.Unlock(); } }
        }
        """);

    [Test]
    public Task Blocking_helper_two_deep_in_dsl_invalidate_fires() => HmmVerifier.VerifyAsync(Dsl + """
            private void Wait() => System.Threading.Thread.Sleep(1);
            private void Flush() => Wait();
            [OnInvalidate] void Inval(in NotifierRange range) { {|HMM1013:Flush()|}; }
        }
        """);

    [Test]
    public Task Blocking_call_on_non_blockable_branch_fires() => HmmVerifier.VerifyAsync(Dsl + """
            [OnInvalidate] void Inval(in NotifierRange range) { if (!range.Blockable) { {|HMM1013:_other.Lock()|}; _other.Unlock(); } }
        }
        """);

    [Test]
    public Task Blocking_under_blockable_check_is_silent() => HmmVerifier.VerifyAsync(Dsl + """
            private void Flush() { _other.Lock(); _other.Unlock(); }
            [OnInvalidate] void Inval(in NotifierRange range) { if (range.Blockable) Flush(); }
        }
        """);

    [Test]
    public Task Trylock_in_invalidate_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            { if (range.Blockable) _update.Lock(); else if (!_update.TryLock()) return false; try { n.SetSeq(seq); return true; } finally { _update.Unlock(); } }
        }
        """);

    [Test]
    public Task Blocking_outside_callbacks_is_silent() => HmmVerifier.VerifyAsync(Dsl + """
            public void Work() { System.Threading.Thread.Sleep(1); _other.Lock(); _other.Unlock(); }
            [OnInvalidate] void Inval(in NotifierRange range) { }
        }
        """);

    // ---- HMM1014 / HMM1015 ----
    [Test]
    public Task False_on_possibly_blockable_range_fires() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            { if (!_update.TryLock()) return {|HMM1014:false|}; try { n.SetSeq(seq); return true; } finally { _update.Unlock(); } }
        }
        """);

    [Test]
    public Task False_on_blockable_branch_fires() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            { if (range.Blockable) return {|HMM1014:false|}; if (!_update.TryLock()) return false; try { n.SetSeq(seq); return true; } finally { _update.Unlock(); } }
        }
        """);

    [Test]
    public Task False_in_dsl_invalidate_fires() => HmmVerifier.VerifyAsync(Dsl + """
            [OnInvalidate] bool Inval(in NotifierRange range) => {|HMM1014:false|};
        }
        """);

    [Test]
    public Task Set_seq_only_on_one_path_fires() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            { if (range.Blockable) _update.Lock(); else if (!_update.TryLock()) return false; try { if (range.Start == 0) n.SetSeq(seq); return {|HMM1015:true|}; } finally { _update.Unlock(); } }
        }
        """);

    [Test]
    public Task Set_seq_missing_in_forwarded_method_fires() => HmmVerifier.VerifyAsync("""
        class M
        {
            private readonly KernelMutex _update = new("u");
            private sealed class Ops(M m) : IIntervalNotifierOps { public bool Invalidate(IntervalNotifier n, in NotifierRange r, ulong s) => m.Invalidate(n, r, s); }
            private bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            { if (range.Blockable) _update.Lock(); else if (!_update.TryLock()) return false; _update.Unlock(); return {|HMM1015:true|}; }
        }
        """);

    [Test]
    public Task Set_seq_skipped_on_early_event_return_fires() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            { if (range.Event == NotifyEvent.Unmap) return {|HMM1015:true|}; if (range.Blockable) _update.Lock(); else if (!_update.TryLock()) return false; try { n.SetSeq(seq); return true; } finally { _update.Unlock(); } }
        }
        """);

    [Test]
    public Task Own_migration_filter_and_trylock_false_are_silent() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            {
                if (range.Event == NotifyEvent.Migrate && range.Owner == this) return true;
                if (range.Blockable) _update.Lock(); else if (!_update.TryLock()) return false;
                try { n.SetSeq(seq); return true; } finally { _update.Unlock(); }
            }
        }
        """);

    [Test]
    public Task Dsl_invalidate_without_set_seq_is_silent() => HmmVerifier.VerifyAsync(Dsl + """
            [OnInvalidate] bool Inval(in NotifierRange range) { if (!range.Blockable) return false; return true; }
        }
        """);

    [Test]
    public Task Forwarding_ops_is_silent() => HmmVerifier.VerifyAsync("""
        class M
        {
            private readonly KernelMutex _update = new("u");
            private sealed class Ops(M m) : IIntervalNotifierOps { public bool Invalidate(IntervalNotifier n, in NotifierRange r, ulong s) => m.Invalidate(n, r, s); }
            private bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            { if (range.Blockable) _update.Lock(); else if (!_update.TryLock()) return false; try { n.SetSeq(seq); } finally { _update.Unlock(); } return true; }
        }
        """);

    // ---- HMM1016 / HMM1017 / HMM1021 ----
    [Test]
    public Task Remove_inside_invalidate_fires() => HmmVerifier.VerifyAsync(Dsl + """
            [OnInvalidate] void Inval(in NotifierRange range) { if (range.Blockable) {|HMM1016:_n.Remove()|}; }
        }
        """);

    [Test]
    public Task Remove_under_update_lock_two_deep_fires() => HmmVerifier.VerifyAsync(Dsl + """
            private void Drop() => _n.Remove();
            private void Teardown() => Drop();
            public void Close() { _update.Lock(); try { {|HMM1016:Teardown()|}; } finally { _update.Unlock(); } }
        }
        """);

    [Test]
    public Task Remove_in_release_fires() => HmmVerifier.VerifyAsync(Dsl + """
            [OnRelease] void Gone() { {|HMM1016:_n.Remove()|}; }
        }
        """);

    [Test]
    public Task Remove_outside_callbacks_and_locks_is_silent() => HmmVerifier.VerifyAsync(Dsl + """
            private void Drop() => _n.Remove();
            public void Close() { _other.Lock(); _other.Unlock(); Drop(); }
            [OnInvalidate] void Inval(in NotifierRange range) { }
        }
        """);

    [Test]
    public Task Mm_put_in_invalidate_fires() => HmmVerifier.VerifyAsync(Dsl + """
            [OnInvalidate] void Inval(in NotifierRange range) { if (range.Blockable) {|HMM1017:_mm.Put()|}; }
        }
        """);

    [Test]
    public Task Mm_put_under_update_lock_fires() => HmmVerifier.VerifyAsync(Dsl + """
            public void Work() { if (!_mm.TryGet()) return; _update.Lock(); try { } finally { {|HMM1017:_mm.Put()|}; _update.Unlock(); } }
        }
        """);

    [Test]
    public Task Mm_put_two_deep_in_page_free_fires() => HmmVerifier.VerifyAsync("""
        class P : IDevPagemapOps
        {
            private AddressSpace _mm = null!;
            private void Drop() => _mm.Put();
            private void Release() => Drop();
            public void PageFree(DevPagemap pgmap, ulong pfn) { {|HMM1017:{|HMM1024:Release()|}|}; }
            public VmFaultResult MigrateToRam(in VmFault vmf) => VmFaultResult.SigBus;
        }
        """);

    [Test]
    public Task Mm_put_after_unlock_is_silent() => HmmVerifier.VerifyAsync(Dsl + """
            public void Work() { if (!_mm.TryGet()) return; try { _update.Lock(); _update.Unlock(); } finally { _mm.Put(); } }
            [OnInvalidate] void Inval(in NotifierRange range) { }
        }
        """);

    [Test]
    public Task Mm_get_in_callback_without_put_elsewhere_is_silent() => HmmVerifier.VerifyAsync(Dsl + """
            private void Drop() => _mm.Put();
            public void Work() { if (!_mm.TryGet()) return; Drop(); }
            [OnInvalidate] void Inval(in NotifierRange range) { }
        }
        """);

    [Test]
    public Task Mm_put_under_unrelated_lock_is_silent() => HmmVerifier.VerifyAsync(Dsl + """
            public void Work() { if (!_mm.TryGet()) return; _other.Lock(); try { } finally { _mm.Put(); _other.Unlock(); } }
            [OnInvalidate] void Inval(in NotifierRange range) { }
        }
        """);

    [Test]
    public Task Migration_in_invalidate_fires() => HmmVerifier.VerifyAsync(Dsl + """
            [OnInvalidate] void Inval(in NotifierRange range) { if (range.Blockable) {|HMM1021:MigrateDevice.Evict(null!, 0, 1)|}; }
        }
        """);

    [Test]
    public Task Migration_two_deep_in_hand_written_invalidate_fires() => HmmVerifier.VerifyAsync(Ops + """
            private void Evict() => MigrateDevice.Evict(null!, 0, 1);
            private void Shrink() => Evict();
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            { if (!range.Blockable) return false; {|HMM1021:Shrink()|}; n.SetSeq(seq); return true; }
        }
        """);

    [Test]
    public Task Migration_in_release_fires() => HmmVerifier.VerifyAsync(Dsl + """
            [OnRelease] void Gone() { {|HMM1021:MigrateDevice.Evict(null!, 0, 1)|}; }
        }
        """);

    [Test]
    public Task Migration_outside_callbacks_is_silent() => HmmVerifier.VerifyAsync(Dsl + """
            private void Evict() => MigrateDevice.Evict(null!, 0, 1);
            public void Shrink() => Evict();
            [OnInvalidate] void Inval(in NotifierRange range) { }
        }
        """);

    [Test]
    public Task Migration_helper_not_called_from_callback_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            private void Evict() => MigrateDevice.Evict(null!, 0, 1);
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq) { if (!range.Blockable) return false; n.SetSeq(seq); return true; }
            public void Later() => Evict();
        }
        """);

    [Test]
    public Task Remove_of_notifier_from_plain_method_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq) { if (!range.Blockable) return false; n.SetSeq(seq); return true; }
            public void Dispose() => _other.Remove();
        }
        """);

    // ---- HMM1019 ----
    [Test]
    public Task Owner_without_event_fires() => HmmVerifier.VerifyAsync(Dsl + """
            [OnInvalidate] void Inval(in NotifierRange range) { if ({|HMM1019:range.Owner|} == this) return; }
        }
        """);

    [Test]
    public Task Owner_before_event_fires() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            { var o = {|HMM1019:range.Owner|}; if (range.Event == NotifyEvent.Migrate && o == this) return {|HMM1015:true|}; if (!range.Blockable) return false; n.SetSeq(seq); return true; }
        }
        """);

    [Test]
    public Task Owner_on_path_without_event_fires() => HmmVerifier.VerifyAsync(Dsl + """
            [OnInvalidate] void Inval(in NotifierRange range, bool f) { if (f && range.Event == NotifyEvent.Migrate) return; if ({|HMM1019:range.Owner|} == this) return; }
        }
        """);

    [Test]
    public Task Owner_after_event_is_silent() => HmmVerifier.VerifyAsync(Dsl + """
            [OnInvalidate] void Inval(in NotifierRange range) { if (range.Event == NotifyEvent.Migrate && range.Owner == this) return; }
        }
        """);

    [Test]
    public Task Owner_outside_callbacks_is_silent() => HmmVerifier.VerifyAsync(Dsl + """
            public object? Peek(NotifierRange range) => range.Owner;
        }
        """);

    [Test]
    public Task Event_pattern_then_owner_is_silent() => HmmVerifier.VerifyAsync(Dsl + """
            [OnInvalidate] void Inval(in NotifierRange range) { object? o = range.Event is NotifyEvent.Migrate or NotifyEvent.Exclusive ? range.Owner : null; }
        }
        """);

    // ---- HMM1024 ----
    [Test]
    public Task Mutex_under_spinlock_fires() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq) { if (!range.Blockable) return false; n.SetSeq(seq); return true; }
            public void F() { _spin.Lock(); try { {|HMM1024:_update.Lock()|}; _update.Unlock(); } finally { _spin.Unlock(); } }
        }
        """);

    [Test]
    public Task Sleep_two_deep_in_dsl_page_free_fires() => HmmVerifier.VerifyAsync(Dsl + """
            private void Wait() => System.Threading.Thread.Sleep(1);
            private void Recycle() => Wait();
            [OnPageFree] void Free(ulong pfn) { {|HMM1024:Recycle()|}; }
        }
        """);

    [Test]
    public Task Mutex_in_page_free_fires() => HmmVerifier.VerifyAsync("""
        class P : IDevPagemapOps
        {
            private readonly KernelMutex _m = new("m");
            public void PageFree(DevPagemap pgmap, ulong pfn) { {|HMM1024:_m.Lock()|}; _m.Unlock(); }
            public VmFaultResult MigrateToRam(in VmFault vmf) => VmFaultResult.SigBus;
        }
        """);

    [Test]
    public Task Spinlock_in_page_free_is_silent() => HmmVerifier.VerifyAsync("""
        class P : IDevPagemapOps
        {
            private readonly SpinLock _s = new("s");
            public void PageFree(DevPagemap pgmap, ulong pfn) { _s.Lock(); _s.Unlock(); }
            public VmFaultResult MigrateToRam(in VmFault vmf) => VmFaultResult.SigBus;
        }
        """);

    [Test]
    public Task Mutex_after_spin_unlock_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq) { if (!range.Blockable) return false; n.SetSeq(seq); return true; }
            public void F() { _spin.Lock(); _spin.Unlock(); _update.Lock(); _update.Unlock(); }
        }
        """);

    [Test]
    public Task Blocking_helper_outside_atomic_context_is_silent() => HmmVerifier.VerifyAsync(Dsl + """
            private void Wait() => System.Threading.Thread.Sleep(1);
            public void Recycle() => Wait();
            [OnPageFree] void Free(ulong pfn) { }
        }
        """);
}
