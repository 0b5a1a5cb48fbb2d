using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>
/// HMM1037: a call retried on EBUSY by a loop with no bound and no back-off. The documented
/// patterns stay silent: the hmm.rst loop (ReadBegin sleeps until the colliding invalidation
/// ends), test_hmm's HMM_RANGE_DEFAULT_TIMEOUT deadline, an attempt counter, a sleep.
/// </summary>
public sealed class BusyRetryTests
{
    private const string Driver = """
        class D
        {
            private readonly AddressSpace _mm;
            private readonly IntervalNotifier _n;
            public D(AddressSpace mm, IntervalNotifier n) { _mm = mm; _n = n; }

        """;

    [Test]
    public Task Device_memory_removal_spinning_on_ebusy_fires() => HmmVerifier.VerifyAsync(Driver + """
            public void Unplug(DevPagemap pgmap)
            {
                while ({|HMM1037:MigrateDevice.EvictAndRemove(pgmap)|} == Errno.EBUSY) { }
            }
        }
        """);

    [Test]
    public Task Exclusive_retry_on_busy_with_continue_fires() => HmmVerifier.VerifyAsync(Driver + """
            public Errno Atomic(ulong addr)
            {
                _mm.MmapLock.ReadLock();
                try
                {
                    while (true)
                    {
                        var e = {|HMM1037:DeviceExclusive.Make(_mm, addr, this, out var page)|};
                        if (e == Errno.EBUSY) continue;
                        if (e != Errno.Ok) return e;
                        page.Dispose();
                        return Errno.Ok;
                    }
                }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    [Test]
    public Task Do_while_on_a_helper_two_calls_deep_fires() => HmmVerifier.VerifyAsync(Driver + """
            public void Unplug(DevPagemap pgmap)
            {
                Errno e;
                do { e = {|HMM1037:TryUnplug(pgmap)|}; } while (e is Errno.EBUSY);
            }
            private Errno TryUnplug(DevPagemap pgmap) => Evict(pgmap);
            private static Errno Evict(DevPagemap pgmap) => MigrateDevice.EvictAndRemove(pgmap);
        }
        """);

    [Test]
    public Task Busy_falling_through_to_the_next_iteration_fires() => HmmVerifier.VerifyAsync(Driver + """
            public Errno Unplug(DevPagemap pgmap)
            {
                for (;;)
                {
                    var e = {|HMM1037:pgmap.Remove()|};
                    if (e != Errno.EBUSY) return e;
                }
            }
        }
        """);

    [Test]
    public Task Helper_faulting_without_a_read_section_retried_fires() => HmmVerifier.VerifyAsync(Driver + """
            public void Mirror(HmmRange range)
            {
                while ({|HMM1037:Snapshot(range)|} == Errno.EBUSY) { }
            }
            private Errno Snapshot(HmmRange range)
            {
                _mm.MmapLock.ReadLock();
                try { return range.Fault(); }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    [Test]
    public Task Counter_bounded_retry_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public Errno Unplug(DevPagemap pgmap)
            {
                Errno e = Errno.EBUSY;
                for (int attempt = 0; attempt < 8 && e == Errno.EBUSY; attempt++) e = MigrateDevice.EvictAndRemove(pgmap);
                int left = 3;
                while (pgmap.Remove() == Errno.EBUSY)
                    if (--left == 0) return Errno.EBUSY;
                return e;
            }
        }
        """);

    [Test]
    public Task Deadline_bounded_retry_as_test_hmm_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public Errno Unplug(DevPagemap pgmap)
            {
                long deadline = Environment.TickCount64 + HmmPfn.DefaultTimeoutMs;
                while (true)
                {
                    if (Environment.TickCount64 > deadline) return Errno.EBUSY;
                    var e = MigrateDevice.EvictAndRemove(pgmap);
                    if (e == Errno.EBUSY) continue;
                    return e;
                }
            }
        }
        """);

    [Test]
    public Task Hmm_rst_loop_restarting_at_read_begin_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public Errno Mirror(HmmRange range)
            {
                while (true)
                {
                    range.NotifierSeq = _n.ReadBegin();
                    _mm.MmapLock.ReadLock();
                    Errno e;
                    try { e = range.Fault(); }
                    finally { _mm.MmapLock.ReadUnlock(); }
                    if (e == Errno.EBUSY) continue;
                    return e;
                }
            }
        }
        """);

    [Test]
    public Task Back_off_two_helpers_deep_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public void Unplug(DevPagemap pgmap)
            {
                while (MigrateDevice.EvictAndRemove(pgmap) == Errno.EBUSY) Wait();
            }
            private static void Wait() => Nap();
            private static void Nap() => System.Threading.Thread.Sleep(1);
        }
        """);

    [Test]
    public Task Busy_that_leaves_the_loop_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public Errno Unplug(DevPagemap pgmap)
            {
                while (true)
                {
                    var e = pgmap.Remove();
                    if (e == Errno.EBUSY) return e;
                    if (e == Errno.Ok) break;
                }
                return Errno.Ok;
            }
        }
        """);
}
