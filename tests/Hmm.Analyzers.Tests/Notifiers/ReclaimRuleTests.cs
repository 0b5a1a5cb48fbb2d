using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>HMM1029 (HMM-R09): reclaim-capable allocations under U, under a lock a callback takes, or inside a callback.</summary>
public sealed class ReclaimRuleTests
{
    /// <summary>A hand-written mirror whose invalidate takes _update (U); _devmem is the device-memory lock no callback takes.</summary>
    private const string Ops = """
        class D : IIntervalNotifierOps
        {
            private readonly KernelMutex _update = new("u");
            private readonly KernelMutex _devmem = new("devmem");
            private readonly DevicePageTable _pt = new();
            private readonly Machine _machine = null!;
            public bool Invalidate(IntervalNotifier n, in NotifierRange range, ulong seq)
            {
                if (range.Blockable) _update.Lock();
                else if (!_update.TryLock()) return false;
                try { n.SetSeq(seq); _pt.Clear(range.Start, range.End); return true; }
                finally { _update.Unlock(); }
            }
            private ulong Backing() => SystemPages.TryAllocateKernelPage(_machine, out ulong pfn) ? pfn : 0;
            private ulong Grow() => Backing();

        """;

    private const string Dsl = """
        [HmmDriver("d", UpdateLock = nameof(_update))]
        partial class G
        {
            private readonly KernelMutex _update = new("u");
            private readonly Machine _machine = null!;
            private readonly DevicePageTable _pt = new();

        """;

    [Test]
    public Task Allocation_under_update_lock_fires() => HmmVerifier.VerifyAsync(Ops + """
            public void Map(ulong va)
            {
                _update.Lock();
                try { if ({|HMM1029:SystemPages.TryAllocateKernelPage(_machine, out ulong pfn)|}) _pt.Clear(va, va + 4096); }
                finally { _update.Unlock(); }
            }
        }
        """);

    [Test]
    public Task Allocation_two_helpers_deep_under_update_lock_fires() => HmmVerifier.VerifyAsync(Ops + """
            public ulong Map()
            {
                _update.Lock();
                try { return {|HMM1029:Grow()|}; }
                finally { _update.Unlock(); }
            }
        }
        """);

    [Test]
    public Task Allocation_inside_dsl_invalidate_fires() => HmmVerifier.VerifyAsync(Dsl + """
            [OnInvalidate] void Inval(in NotifierRange range)
            {
                if ({|HMM1029:SystemPages.TryAllocateLocked(_machine, 0, out ulong pfn)|}) SystemPages.PutKernelPage(_machine, pfn);
                _pt.Clear(range.Start, range.End);
            }
        }
        """);

    [Test]
    public Task Allocation_before_taking_update_lock_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            public void Map(ulong va)
            {
                bool ok = SystemPages.TryAllocateKernelPage(_machine, out ulong pfn);
                _update.Lock();
                try { if (ok) _pt.Clear(va, va + 4096); }
                finally { _update.Unlock(); }
            }
        }
        """);

    [Test]
    public Task Allocation_under_a_lock_no_callback_takes_is_silent() => HmmVerifier.VerifyAsync(Ops + """
            public ulong Map()
            {
                _devmem.Lock();
                try { return Grow(); }
                finally { _devmem.Unlock(); }
            }
        }
        """);

    [Test]
    public Task Helper_allocating_outside_callbacks_and_locks_is_silent() => HmmVerifier.VerifyAsync(Dsl + """
            private ulong Backing() => SystemPages.TryAllocateKernelPage(_machine, out ulong pfn) ? pfn : 0;
            public ulong Prepare() => Backing();
            [OnInvalidate] void Inval(in NotifierRange range) { _pt.Clear(range.Start, range.End); }
        }
        """);
}
