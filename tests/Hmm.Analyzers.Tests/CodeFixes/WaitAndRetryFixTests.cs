using Hmm.Analyzers.CodeFixes.Flow;
using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.CodeFixes;

/// <summary>
/// HMM1036's fix (the flush moves after the unlock it precedes) and HMM1037's (a deadline bounds
/// the EBUSY loop): before/after text, the result compiles and the diagnostic is gone; shapes the
/// fixes do not repair get no fix.
/// </summary>
public sealed class WaitAndRetryFixTests
{
    private const string Ops = """
        class D : IIntervalNotifierOps
        {
            private readonly KernelMutex _update = new("d.update");
            private readonly AddressSpace _mm;
            private bool _dead;
            public D(AddressSpace mm) => _mm = mm;
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
            {
                if (range.Blockable) _update.Lock();
                else if (!_update.TryLock()) return false;
                try { notifier.SetSeq(curSeq); return true; }
                finally { _update.Unlock(); }
            }

        """;

    [Test]
    public Task Flush_last_in_the_try_moves_after_it() => HmmFixVerifier<FlushAfterUnlockFixer>.VerifyAsync(compilationEnd: true, before: Ops + """
            public void Unbind()
            {
                _update.Lock();
                try
                {
                    _dead = true;
                    {|HMM1036:_mm.Machine.SystemWork.Flush()|};
                }
                finally
                {
                    _update.Unlock();
                }
            }
        }
        """, after: Ops + """
            public void Unbind()
            {
                _update.Lock();
                try
                {
                    _dead = true;
                }
                finally
                {
                    _update.Unlock();
                }
                _mm.Machine.SystemWork.Flush();
            }
        }
        """);

    [Test]
    public Task Flush_right_before_the_unlock_moves_after_it() => HmmFixVerifier<FlushAfterUnlockFixer>.VerifyAsync(compilationEnd: true, before: Ops + """
            public void Unbind()
            {
                _update.Lock();
                _dead = true;
                {|HMM1036:_mm.Machine.SystemWork.Flush()|};
                _update.Unlock();
            }
        }
        """, after: Ops + """
            public void Unbind()
            {
                _update.Lock();
                _dead = true;
                _update.Unlock();
                _mm.Machine.SystemWork.Flush();
            }
        }
        """);

    [Test]
    public Task Flush_alone_in_the_try_leaves_only_the_unlock() => HmmFixVerifier<FlushAfterUnlockFixer>.VerifyAsync(compilationEnd: true, before: Ops + """
            public void Unbind()
            {
                _update.Lock();
                try { {|HMM1036:_mm.Machine.SystemWork.Flush()|}; }
                finally { _update.Unlock(); }
            }
        }
        """, after: Ops + """
            public void Unbind()
            {
                _update.Lock();
                _update.Unlock();
                _mm.Machine.SystemWork.Flush();
            }
        }
        """);

    [Test]
    public Task Flush_in_the_middle_of_the_critical_section_gets_no_fix() => HmmFixVerifier<FlushAfterUnlockFixer>.VerifyNoFixAsync(Ops + """
            public void Unbind()
            {
                _update.Lock();
                try
                {
                    {|HMM1036:_mm.Machine.SystemWork.Flush()|};
                    _dead = true;
                }
                finally { _update.Unlock(); }
            }
        }
        """);

    [Test]
    public Task Flush_inside_the_callback_gets_no_fix() => HmmFixVerifier<FlushAfterUnlockFixer>.VerifyNoFixAsync("""
        [HmmDriver("w", UpdateLock = nameof(_update))]
        public partial class W
        {
            private readonly KernelMutex _update = new("w.update");
            private AddressSpace _mm = null!;
            [OnRelease] void Release() => {|HMM1036:_mm.Machine.SystemWork.Flush()|};
        }
        """);

    [Test]
    public Task Flush_through_a_helper_gets_no_fix() => HmmFixVerifier<FlushAfterUnlockFixer>.VerifyNoFixAsync(Ops + """
            public void Unbind()
            {
                _update.Lock();
                {|HMM1036:Drain()|};
                _update.Unlock();
            }
            private void Drain() => _mm.Machine.SystemWork.Flush();
        }
        """);

    private const string Driver = """
        class R
        {
            private readonly AddressSpace _mm;
            public R(AddressSpace mm) => _mm = mm;

        """;

    [Test]
    public Task Busy_spin_gets_a_deadline() => HmmFixVerifier<BusyRetryDeadlineFixer>.VerifyAsync(compilationEnd: true, before: Driver + """
            public Errno Unplug(DevPagemap pgmap)
            {
                while ({|HMM1037:MigrateDevice.EvictAndRemove(pgmap)|} == Errno.EBUSY) { }
                return Errno.Ok;
            }
        }
        """, after: Driver + """
            public Errno Unplug(DevPagemap pgmap)
            {
                long deadline = Environment.TickCount64 + HmmPfn.DefaultTimeoutMs;
                while (MigrateDevice.EvictAndRemove(pgmap) == Errno.EBUSY)
                {
                    if (Environment.TickCount64 > deadline) return Errno.EBUSY;
                }
                return Errno.Ok;
            }
        }
        """);

    [Test]
    public Task Do_while_retry_under_the_mmap_lock_in_a_try_gets_a_deadline() => HmmFixVerifier<BusyRetryDeadlineFixer>.VerifyAsync(compilationEnd: true, before: Driver + """
            public Errno Atomic(ulong addr)
            {
                _mm.MmapLock.ReadLock();
                try
                {
                    Errno e;
                    ExclusivePage page;
                    do
                    {
                        e = {|HMM1037:DeviceExclusive.Make(_mm, addr, this, out page)|};
                    } while (e == Errno.EBUSY);
                    if (e != Errno.Ok) return e;
                    page.Dispose();
                    return Errno.Ok;
                }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """, after: Driver + """
            public Errno Atomic(ulong addr)
            {
                _mm.MmapLock.ReadLock();
                try
                {
                    Errno e;
                    ExclusivePage page;
                    long deadline = Environment.TickCount64 + HmmPfn.DefaultTimeoutMs;
                    do
                    {
                        if (Environment.TickCount64 > deadline) return Errno.EBUSY;
                        e = DeviceExclusive.Make(_mm, addr, this, out page);
                    } while (e == Errno.EBUSY);
                    if (e != Errno.Ok) return e;
                    page.Dispose();
                    return Errno.Ok;
                }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    [Test]
    public Task Name_taken_and_a_helper_two_deep_gets_a_fresh_deadline() => HmmFixVerifier<BusyRetryDeadlineFixer>.VerifyAsync(compilationEnd: true, before: Driver + """
            public Errno Unplug(DevPagemap pgmap, long deadline)
            {
                for (;;)
                {
                    var e = {|HMM1037:TryUnplug(pgmap)|};
                    if (e != Errno.EBUSY) return e;
                }
            }
            private Errno TryUnplug(DevPagemap pgmap) => Evict(pgmap);
            private static Errno Evict(DevPagemap pgmap) => MigrateDevice.EvictAndRemove(pgmap);
        }
        """, after: Driver + """
            public Errno Unplug(DevPagemap pgmap, long deadline)
            {
                long busyDeadline = Environment.TickCount64 + HmmPfn.DefaultTimeoutMs;
                for (;;)
                {
                    if (Environment.TickCount64 > busyDeadline) return Errno.EBUSY;
                    var e = TryUnplug(pgmap);
                    if (e != Errno.EBUSY) return e;
                }
            }
            private Errno TryUnplug(DevPagemap pgmap) => Evict(pgmap);
            private static Errno Evict(DevPagemap pgmap) => MigrateDevice.EvictAndRemove(pgmap);
        }
        """);

    [Test]
    public Task Fix_all_bounds_every_spin_in_the_document() => HmmFixVerifier<BusyRetryDeadlineFixer>.VerifyAsync(compilationEnd: true, before: Driver + """
            public Errno Unplug(DevPagemap pgmap)
            {
                while ({|HMM1037:MigrateDevice.EvictAndRemove(pgmap)|} == Errno.EBUSY) { }
                return Errno.Ok;
            }
            public Errno Remove(DevPagemap pgmap)
            {
                while ({|HMM1037:pgmap.Remove()|} == Errno.EBUSY) { }
                return Errno.Ok;
            }
        }
        """, after: Driver + """
            public Errno Unplug(DevPagemap pgmap)
            {
                long deadline = Environment.TickCount64 + HmmPfn.DefaultTimeoutMs;
                while (MigrateDevice.EvictAndRemove(pgmap) == Errno.EBUSY)
                {
                    if (Environment.TickCount64 > deadline) return Errno.EBUSY;
                }
                return Errno.Ok;
            }
            public Errno Remove(DevPagemap pgmap)
            {
                long deadline = Environment.TickCount64 + HmmPfn.DefaultTimeoutMs;
                while (pgmap.Remove() == Errno.EBUSY)
                {
                    if (Environment.TickCount64 > deadline) return Errno.EBUSY;
                }
                return Errno.Ok;
            }
        }
        """);

    [Test]
    public Task Void_method_gets_no_fix() => HmmFixVerifier<BusyRetryDeadlineFixer>.VerifyNoFixAsync(Driver + """
            public void Unplug(DevPagemap pgmap)
            {
                while ({|HMM1037:MigrateDevice.EvictAndRemove(pgmap)|} == Errno.EBUSY) { }
            }
        }
        """);

    [Test]
    public Task Lock_taken_before_the_loop_without_finally_gets_no_fix() => HmmFixVerifier<BusyRetryDeadlineFixer>.VerifyNoFixAsync(Driver + """
            public Errno Atomic(ulong addr)
            {
                _mm.MmapLock.ReadLock();
                Errno e;
                ExclusivePage page;
                do { e = {|HMM1037:DeviceExclusive.Make(_mm, addr, this, out page)|}; } while (e == Errno.EBUSY);
                if (e == Errno.Ok) page.Dispose();
                _mm.MmapLock.ReadUnlock();
                return e;
            }
        }
        """);
}
