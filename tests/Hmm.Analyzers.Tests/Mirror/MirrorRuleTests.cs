using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Mirror;

/// <summary>HMM1010 (R01), HMM1011 (R03/R04), HMM1012 (R06/R14), HMM1018 (R15).</summary>
public sealed class MirrorRuleTests
{
    /// <summary>A hand-written mirror: U is _update, taken by its invalidate.</summary>
    private const string Driver = """
        class D : IIntervalNotifierOps
        {
            private readonly KernelMutex _update = new("u");
            private readonly IntervalNotifier _n;
            private readonly AddressSpace _mm;
            private readonly DevicePageTable _pt = new();
            public D(AddressSpace mm) { _mm = mm; _n = new IntervalNotifier(this); }
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
            {
                if (range.Blockable) _update.Lock();
                else if (!_update.TryLock()) return false;
                try { notifier.SetSeq(curSeq); _pt.Clear(range.Start, range.End); return true; }
                finally { _update.Unlock(); }
            }

        """;

    // ---- HMM1010 ----
    [Test]
    public Task Fault_without_mmap_lock_fires() => HmmVerifier.VerifyAsync(Driver + """
            public Errno F(HmmRange r) { r.NotifierSeq = _n.ReadBegin(); return {|HMM1010:r.Fault()|}; }
        }
        """);

    [Test]
    public Task Find_vma_before_taking_mmap_lock_fires() => HmmVerifier.VerifyAsync(Driver + """
            public bool F(ulong a) { var vma = {|HMM1010:_mm.FindVma(a)|}; _mm.MmapLock.ReadLock(); _mm.MmapLock.ReadUnlock(); return vma != null; }
        }
        """);

    [Test]
    public Task Exclusive_two_helpers_deep_without_mmap_lock_fires() => HmmVerifier.VerifyAsync(Driver + """
            private Errno Take(ulong a) { var e = DeviceExclusive.Make(_mm, a, null, out var p); if (e == Errno.Ok) p.Dispose(); return e; }
            private Errno Outer(ulong a) => Take(a);
            public Errno F(ulong a) => {|HMM1010:Outer(a)|};
        }
        """);

    [Test]
    public Task Fault_under_mmap_read_lock_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public Errno F(HmmRange r) { r.NotifierSeq = _n.ReadBegin(); _mm.MmapLock.ReadLock(); try { return r.Fault(); } finally { _mm.MmapLock.ReadUnlock(); } }
        }
        """);

    [Test]
    public Task Migrate_to_ram_shape_holds_mmap_lock_on_entry_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public VmFaultResult MigrateToRam(in VmFault vmf)
            {
                using var args = new MigrateVma { Vma = vmf.Vma, Start = vmf.Address, End = vmf.Address + 4096, Src = new ulong[1], Dst = new ulong[1], FaultPage = vmf.Page };
                if (MigrateVma.Setup(args) != Errno.Ok) return VmFaultResult.SigBus;
                MigrateVma.Pages(args);
                MigrateVma.Finalize(args);
                return VmFaultResult.Ok;
            }
        }
        """);

    [Test]
    public Task Exclusive_two_helpers_deep_under_mmap_lock_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            private Errno Take(ulong a) { var e = DeviceExclusive.Make(_mm, a, null, out var p); if (e == Errno.Ok) p.Dispose(); return e; }
            private Errno Outer(ulong a) => Take(a);
            public Errno F(ulong a) { _mm.MmapLock.ReadLock(); try { return Outer(a); } finally { _mm.MmapLock.ReadUnlock(); } }
        }
        """);

    // ---- HMM1011 ----
    [Test]
    public Task Read_begin_under_update_lock_fires() => HmmVerifier.VerifyAsync(Driver + """
            public void F(HmmRange r) { _update.Lock(); try { r.NotifierSeq = {|HMM1011:_n.ReadBegin()|}; } finally { _update.Unlock(); } }
        }
        """);

    [Test]
    public Task Fault_under_update_lock_fires() => HmmVerifier.VerifyAsync(Driver + """
            public Errno F(HmmRange r)
            {
                _update.Lock();
                try { {|HMM1006:_mm.MmapLock.ReadLock()|}; try { return {|HMM1011:r.Fault()|}; } finally { _mm.MmapLock.ReadUnlock(); } }
                finally { _update.Unlock(); }
            }
        }
        """);

    [Test]
    public Task Fault_two_helpers_deep_under_lock_taken_by_own_migrate_to_ram_fires() => HmmVerifier.VerifyAsync(Driver + """
            private readonly KernelMutex _dev = new("dev");
            public VmFaultResult MigrateToRam(in VmFault vmf) { _dev.Lock(); try { return VmFaultResult.SigBus; } finally { _dev.Unlock(); } }
            [RequiresShared("_mm.MmapLock")] private Errno Inner(HmmRange r) => r.Fault();
            [RequiresShared("_mm.MmapLock")] private Errno Outer(HmmRange r) => Inner(r);
            public Errno F(HmmRange r)
            {
                _mm.MmapLock.ReadLock();
                try { _dev.Lock(); try { return {|HMM1011:Outer(r)|}; } finally { _dev.Unlock(); } }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    [Test]
    public Task Read_begin_before_update_lock_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public void F(HmmRange r) { r.NotifierSeq = _n.ReadBegin(); _update.Lock(); try { _n.ReadRetry(r.NotifierSeq); } finally { _update.Unlock(); } }
        }
        """);

    [Test]
    public Task Fault_under_unrelated_lock_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            private readonly KernelMutex _stats = new("stats");
            public Errno F(HmmRange r) { _stats.Lock(); try { _mm.MmapLock.ReadLock(); try { return r.Fault(); } finally { _mm.MmapLock.ReadUnlock(); } } finally { _stats.Unlock(); } }
        }
        """);

    [Test]
    public Task Fault_two_helpers_deep_without_callback_locks_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            [RequiresShared("_mm.MmapLock")] private Errno Inner(HmmRange r) => r.Fault();
            [RequiresShared("_mm.MmapLock")] private Errno Outer(HmmRange r) => Inner(r);
            public Errno F(HmmRange r) { _mm.MmapLock.ReadLock(); try { return Outer(r); } finally { _mm.MmapLock.ReadUnlock(); } }
        }
        """);

    // ---- HMM1012 ----
    private const string Loop = """
            public Errno F(HmmRange r)
            {
                while (true)
                {
                    r.NotifierSeq = _n.ReadBegin();
                    _mm.MmapLock.ReadLock();
                    Errno e;
                    try { e = r.Fault(); } finally { _mm.MmapLock.ReadUnlock(); }
                    if (e == Errno.EBUSY) continue;
                    if (e != Errno.Ok) return e;

        """;

    [Test]
    public Task Install_without_read_retry_fires() => HmmVerifier.VerifyAsync(Driver + Loop + """
                    _update.Lock();
                    try { {|HMM1012:_pt.Install(r.Start, r.HmmPfns)|}; return Errno.Ok; } finally { _update.Unlock(); }
                }
            }
        }
        """);

    [Test]
    public Task Pfn_decoded_after_unlock_fires() => HmmVerifier.VerifyAsync(Driver + Loop + """
                    _update.Lock();
                    try { if (_n.ReadRetry(r.NotifierSeq)) continue; } finally { _update.Unlock(); }
                    return {|HMM1012:r.HmmPfns[0]|} != 0 ? Errno.Ok : Errno.EFAULT;
                }
            }
        }
        """);

    [Test]
    public Task Install_two_helpers_deep_on_collision_path_fires() => HmmVerifier.VerifyAsync(Driver + """
            private void Program(HmmRange r) => _pt.Install(r.Start, r.HmmPfns);
            private void Map(HmmRange r) => Program(r);

        """ + Loop + """
                    _update.Lock();
                    try { if (!_n.ReadRetry(r.NotifierSeq)) { } {|HMM1012:Map(r)|}; return Errno.Ok; } finally { _update.Unlock(); }
                }
            }
        }
        """);

    [Test]
    public Task Install_after_successful_retry_under_u_is_silent() => HmmVerifier.VerifyAsync(Driver + Loop + """
                    _update.Lock();
                    try { if (_n.ReadRetry(r.NotifierSeq)) continue; _pt.Install(r.Start, r.HmmPfns); return Errno.Ok; } finally { _update.Unlock(); }
                }
            }
        }
        """);

    [Test]
    public Task Retry_result_in_local_then_install_is_silent() => HmmVerifier.VerifyAsync(Driver + Loop + """
                    _update.Lock();
                    try { bool again = _n.ReadRetry(r.NotifierSeq); if (again) continue; _pt.Install(r.Start, r.HmmPfns); return Errno.Ok; } finally { _update.Unlock(); }
                }
            }
        }
        """);

    [Test]
    public Task Install_two_helpers_deep_after_retry_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            private void Program(HmmRange r) => _pt.Install(r.Start, r.HmmPfns);
            private void Map(HmmRange r) => Program(r);

        """ + Loop + """
                    _update.Lock();
                    try { if (_n.ReadRetry(r.NotifierSeq)) continue; Map(r); return Errno.Ok; } finally { _update.Unlock(); }
                }
            }
        }
        """);

    // ---- HMM1018 ----
    [Test]
    public Task Req_write_alone_fires() => HmmVerifier.VerifyAsync("""
        class D { public void F(HmmRange r) { r.DefaultFlags = {|HMM1018:HmmPfn.ReqWrite|}; } }
        """);

    [Test]
    public Task Req_write_in_initializer_fires() => HmmVerifier.VerifyAsync("""
        class D { public HmmRange F(IntervalNotifier n) => new HmmRange(n, 0, 4096) { DefaultFlags = {|HMM1018:HmmPfn.ReqWrite | HmmPfn.DmaMapped|} }; }
        """);

    [Test]
    public Task Req_write_on_one_branch_without_fault_fires() => HmmVerifier.VerifyAsync("""
        class D { public void F(HmmRange r, bool w) { r.DefaultFlags = {|HMM1018:w ? HmmPfn.ReqWrite : HmmPfn.ReqFault|}; } }
        """);

    [Test]
    public Task Req_write_with_fault_is_silent() => HmmVerifier.VerifyAsync("""
        class D { public void F(HmmRange r) { r.DefaultFlags = HmmPfn.ReqFault | HmmPfn.ReqWrite; } }
        """);

    [Test]
    public Task Conditional_write_with_fault_is_silent() => HmmVerifier.VerifyAsync("""
        class D { public void F(HmmRange r, bool w, bool p) { r.DefaultFlags = p ? 0 : HmmPfn.ReqFault | (w ? HmmPfn.ReqWrite : 0); } }
        """);

    [Test]
    public Task Fault_only_is_silent() => HmmVerifier.VerifyAsync("""
        class D { public void F(HmmRange r) { r.DefaultFlags = HmmPfn.ReqFault; r.PfnFlagsMask = HmmPfn.ReqWrite; } }
        """);

    // ---- HMM1026 ----
    [Test]
    public Task Busy_retry_without_read_begin_fires() => HmmVerifier.VerifyAsync(Driver + """
            [RequiresShared("r.Notifier.Mm.MmapLock")]
            public Errno F(HmmRange r) { r.NotifierSeq = _n.ReadBegin(); Errno e; do { e = {|HMM1026:r.Fault()|}; } while (e == Errno.EBUSY); return e; }
        }
        """);

    [Test]
    public Task Second_fault_after_first_fires() => HmmVerifier.VerifyAsync(Driver + """
            [RequiresShared("r.Notifier.Mm.MmapLock")]
            public Errno F(HmmRange r) { r.NotifierSeq = _n.ReadBegin(); if (r.Fault() == Errno.EBUSY) return {|HMM1026:r.Fault()|}; return Errno.Ok; }
        }
        """);

    [Test]
    public Task Loop_with_read_begin_outside_fires() => HmmVerifier.VerifyAsync(Driver + """
            [RequiresShared("r.Notifier.Mm.MmapLock")]
            public Errno F(HmmRange r) { r.NotifierSeq = _n.ReadBegin(); for (int i = 0; i < 3; i++) { if ({|HMM1026:r.Fault()|} == Errno.Ok) return Errno.Ok; } return Errno.EBUSY; }
        }
        """);

    [Test]
    public Task Read_begin_each_attempt_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public Errno F(HmmRange r) { Errno e; do { r.NotifierSeq = _n.ReadBegin(); _mm.MmapLock.ReadLock(); try { e = r.Fault(); } finally { _mm.MmapLock.ReadUnlock(); } } while (e == Errno.EBUSY); return e; }
        }
        """);

    [Test]
    public Task Canonical_loop_with_continue_is_silent() => HmmVerifier.VerifyAsync(Driver + Loop + """
                    _update.Lock();
                    try { if (_n.ReadRetry(r.NotifierSeq)) continue; return Errno.Ok; } finally { _update.Unlock(); }
                }
            }
        }
        """);

    [Test]
    public Task Two_ranges_each_with_read_begin_are_silent() => HmmVerifier.VerifyAsync(Driver + """
            [RequiresShared("a.Notifier.Mm.MmapLock")]
            public void F(HmmRange a, HmmRange b) { a.NotifierSeq = _n.ReadBegin(); a.Fault(); b.NotifierSeq = _n.ReadBegin(); b.Fault(); }
        }
        """);
}
