using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Mirror;

/// <summary>HMM1027 (R16: hmm_pfns against the range, per-entry requests per attempt), HMM1028 (R17: device-private owner).</summary>
public sealed class RangeRuleTests
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
            private Errno Attempt(HmmRange r)
            {
                r.NotifierSeq = _n.ReadBegin();
                _mm.MmapLock.ReadLock();
                try { return r.Fault(); }
                finally { _mm.MmapLock.ReadUnlock(); }
            }

        """;

    // ---- HMM1027: the pfn array against [Start, End) ----
    [Test]
    public Task Pfn_array_shorter_than_the_range_fires() => HmmVerifier.VerifyAsync(Driver + """
            public HmmRange Make() => new HmmRange(_n, 0x10000, 0x18000) { HmmPfns = {|HMM1027:new ulong[4]|} };
        }
        """);

    [Test]
    public Task Misaligned_start_fires() => HmmVerifier.VerifyAsync(Driver + """
            public HmmRange Make() => new HmmRange { Notifier = _n, Start = {|HMM1027:0x10800|}, End = 0x12000, HmmPfns = new ulong[2] };
        }
        """);

    [Test]
    public Task Retry_loop_reusing_outputs_as_per_entry_requests_fires() => HmmVerifier.VerifyAsync(Driver + """
            public Errno F(HmmRange r)
            {
                r.PfnFlagsMask = HmmPfn.ReqFault | HmmPfn.ReqWrite;
                for (int i = 0; i < r.HmmPfns.Length; i++) r.HmmPfns[i] = HmmPfn.ReqFault;
                for (int attempt = 0; attempt < 8; attempt++)
                {
                    r.NotifierSeq = _n.ReadBegin();
                    _mm.MmapLock.ReadLock();
                    Errno e;
                    try { e = {|HMM1027:r.Fault()|}; }
                    finally { _mm.MmapLock.ReadUnlock(); }
                    if (e != Errno.EBUSY) return e;
                }
                return Errno.EBUSY;
            }
        }
        """);

    [Test]
    public Task Retry_loop_on_a_local_with_initialised_mask_fires() => HmmVerifier.VerifyAsync(Driver + """
            public Errno F(ulong a)
            {
                var r = new HmmRange(_n, a, a + 0x4000) { PfnFlagsMask = HmmPfn.ReqFault };
                r.HmmPfns[1] = HmmPfn.ReqFault;
                while (true)
                {
                    r.NotifierSeq = _n.ReadBegin();
                    _mm.MmapLock.ReadLock();
                    Errno e;
                    try { e = {|HMM1027:r.Fault()|}; }
                    finally { _mm.MmapLock.ReadUnlock(); }
                    if (e != Errno.EBUSY) return e;
                }
            }
        }
        """);

    [Test]
    public Task Pfn_array_of_the_range_size_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public HmmRange Make() => new HmmRange(_n, 0x10000, 0x18000) { HmmPfns = new ulong[8] };
            public HmmRange Make2() => new HmmRange { Notifier = _n, Start = 0x10000, End = 0x12000, HmmPfns = new ulong[2] };
        }
        """);

    [Test]
    public Task Retry_loop_rewriting_requests_each_attempt_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public Errno F(HmmRange r)
            {
                r.PfnFlagsMask = HmmPfn.ReqFault | HmmPfn.ReqWrite;
                for (int attempt = 0; attempt < 8; attempt++)
                {
                    for (int i = 0; i < r.HmmPfns.Length; i++) r.HmmPfns[i] = HmmPfn.ReqFault;
                    r.NotifierSeq = _n.ReadBegin();
                    _mm.MmapLock.ReadLock();
                    Errno e;
                    try { e = r.Fault(); }
                    finally { _mm.MmapLock.ReadUnlock(); }
                    if (e != Errno.EBUSY) return e;
                }
                return Errno.EBUSY;
            }
        }
        """);

    [Test]
    public Task Retry_loop_with_default_flags_only_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public Errno F(HmmRange r)
            {
                r.DefaultFlags = HmmPfn.ReqFault;
                r.PfnFlagsMask = 0;
                while (true)
                {
                    r.NotifierSeq = _n.ReadBegin();
                    _mm.MmapLock.ReadLock();
                    Errno e;
                    try { e = r.Fault(); }
                    finally { _mm.MmapLock.ReadUnlock(); }
                    if (e != Errno.EBUSY) return e;
                }
            }
        }
        """);

    [Test]
    public Task Retry_loop_building_a_fresh_range_each_attempt_is_silent() => HmmVerifier.VerifyAsync(Driver + """
            public Errno F(ulong a)
            {
                for (int attempt = 0; attempt < 8; attempt++)
                {
                    var r = new HmmRange(_n, a, a + 0x2000) { PfnFlagsMask = HmmPfn.ReqFault };
                    r.HmmPfns[0] = HmmPfn.ReqFault;
                    r.NotifierSeq = _n.ReadBegin();
                    _mm.MmapLock.ReadLock();
                    Errno e;
                    try { e = r.Fault(); }
                    finally { _mm.MmapLock.ReadUnlock(); }
                    if (e != Errno.EBUSY) return e;
                }
                return Errno.EBUSY;
            }
        }
        """);

    // ---- HMM1028: the device-private owner ----
    private const string Owner = """
        class D : IIntervalNotifierOps
        {
            private readonly IntervalNotifier _n;
            private readonly AddressSpace _mm;
            private readonly HmmRange _range;
            public D(AddressSpace mm) { _mm = mm; _n = new IntervalNotifier(this); _range = new HmmRange(_n, 0, 0x1000); }
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq) { notifier.SetSeq(curSeq); return true; }

        """;

    [Test]
    public Task Local_range_of_a_device_private_driver_without_owner_fires() => HmmVerifier.VerifyAsync(Owner + """
            public Errno Grow(Machine m) => DevPagemap.Create(m, DevicePageKind.Private, 2 << 20, this, null, out _);
            public Errno F(ulong a)
            {
                var r = new HmmRange(_n, a, a + 0x1000) { DefaultFlags = HmmPfn.ReqFault };
                r.NotifierSeq = _n.ReadBegin();
                _mm.MmapLock.ReadLock();
                try { return {|HMM1028:r.Fault()|}; }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    [Test]
    public Task Field_range_faulted_two_helpers_deep_without_owner_fires() => HmmVerifier.VerifyAsync(Owner + """
            public Errno Grow(Machine m) => DevPagemap.Create(m, DevicePageKind.Private, 2 << 20, this, null, out _);
            private Errno Inner() { _range.NotifierSeq = _n.ReadBegin(); _mm.MmapLock.ReadLock(); try { return {|HMM1028:_range.Fault()|}; } finally { _mm.MmapLock.ReadUnlock(); } }
            private Errno Outer() => Inner();
            public Errno F() => Outer();
        }
        """);

    [Test]
    public Task Pagemap_kind_chosen_at_run_time_counts_as_private_fires() => HmmVerifier.VerifyAsync(Owner + """
            public Errno Grow(Machine m, DevicePageKind kind) => DevPagemap.Create(m, kind, 2 << 20, this, null, out _);
            public Errno F(HmmRange r) { r.NotifierSeq = _n.ReadBegin(); _mm.MmapLock.ReadLock(); try { return {|HMM1028:r.Fault()|}; } finally { _mm.MmapLock.ReadUnlock(); } }
        }
        """);

    [Test]
    public Task Owner_set_in_the_initializer_is_silent() => HmmVerifier.VerifyAsync(Owner + """
            public Errno Grow(Machine m) => DevPagemap.Create(m, DevicePageKind.Private, 2 << 20, this, null, out _);
            public Errno F(ulong a)
            {
                var r = new HmmRange(_n, a, a + 0x1000) { DefaultFlags = HmmPfn.ReqFault, DevPrivateOwner = this };
                r.NotifierSeq = _n.ReadBegin();
                _mm.MmapLock.ReadLock();
                try { return r.Fault(); }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    [Test]
    public Task Owner_set_once_on_the_field_is_silent() => HmmVerifier.VerifyAsync(Owner + """
            public Errno Grow(Machine m) { _range.DevPrivateOwner = this; return DevPagemap.Create(m, DevicePageKind.Private, 2 << 20, this, null, out _); }
            private Errno Inner() { _range.NotifierSeq = _n.ReadBegin(); _mm.MmapLock.ReadLock(); try { return _range.Fault(); } finally { _mm.MmapLock.ReadUnlock(); } }
            public Errno F() => Inner();
        }
        """);

    [Test]
    public Task Coherent_memory_or_no_device_memory_is_silent() => HmmVerifier.VerifyAsync(Owner + """
            public Errno Grow(Machine m) => DevPagemap.Create(m, DevicePageKind.Coherent, 2 << 20, this, null, out _);
            public Errno F(HmmRange r) { r.NotifierSeq = _n.ReadBegin(); _mm.MmapLock.ReadLock(); try { return r.Fault(); } finally { _mm.MmapLock.ReadUnlock(); } }
        }
        class Plain : IIntervalNotifierOps
        {
            private readonly IntervalNotifier _n;
            private readonly AddressSpace _mm;
            public Plain(AddressSpace mm) { _mm = mm; _n = new IntervalNotifier(this); }
            public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq) { notifier.SetSeq(curSeq); return true; }
            public Errno F(HmmRange r) { r.NotifierSeq = _n.ReadBegin(); _mm.MmapLock.ReadLock(); try { return r.Fault(); } finally { _mm.MmapLock.ReadUnlock(); } }
        }
        """);

    [Test]
    public Task Range_handed_to_a_configuring_helper_is_silent() => HmmVerifier.VerifyAsync(Owner + """
            public Errno Grow(Machine m) => DevPagemap.Create(m, DevicePageKind.Private, 2 << 20, this, null, out _);
            private void Configure(HmmRange r) => r.DevPrivateOwner = this;
            public Errno F(ulong a)
            {
                var r = new HmmRange(_n, a, a + 0x1000);
                Configure(r);
                r.NotifierSeq = _n.ReadBegin();
                _mm.MmapLock.ReadLock();
                try { return r.Fault(); }
                finally { _mm.MmapLock.ReadUnlock(); }
            }
        }
        """);

    // ---- HMM1034: no device-private owner when the pfns feed a DMA map ----
    [Test]
    public Task Owner_in_the_initializer_of_a_dma_mapped_range_fires() => HmmVerifier.VerifyAsync(Owner + """
            public HmmRange Make(HmmDmaMap map, ulong a) => new HmmRange(_n, a, a + 0x2000) { HmmPfns = map.Pfns, {|HMM1034:DevPrivateOwner = this|} };
        }
        """);

    [Test]
    public Task Owner_assigned_after_the_dma_pfns_fires() => HmmVerifier.VerifyAsync(Owner + """
            public HmmRange Make(HmmDmaMap map, ulong a)
            {
                var r = new HmmRange(_n, a, a + 0x2000);
                r.HmmPfns = map.Pfns;
                {|HMM1034:r.DevPrivateOwner = this|};
                return r;
            }
        }
        """);

    [Test]
    public Task Owner_set_before_the_dma_pfns_on_a_field_range_fires() => HmmVerifier.VerifyAsync(Owner + """
            private HmmDmaMap _map = null!;
            public void Prepare()
            {
                {|HMM1034:_range.DevPrivateOwner = this|};
                _range.HmmPfns = _map.Pfns;
            }
        }
        """);

    [Test]
    public Task Dma_mapped_range_without_owner_is_silent() => HmmVerifier.VerifyAsync(Owner + """
            public HmmRange Make(HmmDmaMap map, ulong a) => new HmmRange(_n, a, a + 0x2000) { HmmPfns = map.Pfns };
        }
        """);

    [Test]
    public Task Owner_with_the_drivers_own_array_is_silent() => HmmVerifier.VerifyAsync(Owner + """
            public HmmRange Make(HmmDmaMap map, ulong a) { var unused = map.Pfns.Length; return new HmmRange(_n, a, a + 0x2000) { HmmPfns = new ulong[2], DevPrivateOwner = this }; }
        }
        """);

    [Test]
    public Task Null_owner_on_a_dma_mapped_range_is_silent() => HmmVerifier.VerifyAsync(Owner + """
            public HmmRange Make(HmmDmaMap map, ulong a) => new HmmRange(_n, a, a + 0x2000) { HmmPfns = map.Pfns, DevPrivateOwner = null };
        }
        """);
}
