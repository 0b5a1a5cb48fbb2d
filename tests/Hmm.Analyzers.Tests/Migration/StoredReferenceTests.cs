using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>
/// A reference stored into the object is handed over where the store happens, not everywhere in
/// the body: an early return before the store still leaks (HMM1023 mm, HMM1025 DMA, HMM1041
/// pagemap), a path through the store does not.
/// </summary>
public sealed class StoredReferenceTests
{
    private const string Head = """
        class Importer
        {
            private DevPagemap? _peer;
            private AddressSpace? _mm;
            private Iommu _iommu = null!;
            private readonly ulong[] _ring = new ulong[16];
            private readonly System.Collections.Generic.List<DevPagemap> _peers = new();
            private int _head;
            private static Errno Probe(ulong pfn) => pfn == 0 ? Errno.EINVAL : Errno.Ok;

        """;

    private static Task Verify(string members) => HmmVerifier.VerifyAsync(Head + members + "}\n");

    [Test]
    public Task Pagemap_early_return_before_the_field_store_fires() => Verify("""
            public Errno Import(Machine machine, ulong pfn)
            {
                var peer = {|HMM1041:DevPagemap.Get(machine, pfn)|};
                if (peer == null) return Errno.EFAULT;
                if (peer.Kind != DevicePageKind.Private) return Errno.EOPNOTSUPP;
                _peer = peer;
                return Errno.Ok;
            }

        """);

    [Test]
    public Task Dma_ring_full_before_the_element_store_fires() => Verify("""
            public bool Post(ulong pfn)
            {
                if (!{|HMM1025:_iommu.TryDmaMap(pfn, 1, false, out ulong bus)|}) return false;
                if (_head == _ring.Length) return false;
                _ring[_head++] = bus;
                return true;
            }

        """);

    [Test]
    public Task Mm_reference_kept_on_one_branch_only_fires() => Verify("""
            public Errno Bind(AddressSpace mm, ulong start)
            {
                if (!{|HMM1023:mm.TryGet()|}) return Errno.EFAULT;
                if (Probe(start) != Errno.Ok) return Errno.EINVAL;
                _mm = mm;
                return Errno.Ok;
            }

        """);

    [Test]
    public Task Early_return_before_a_store_two_helpers_deep_fires() => Verify("""
            public Errno Import(Machine machine, ulong pfn)
            {
                var peer = {|HMM1041:DevPagemap.Get(machine, pfn)|};
                if (peer == null) return Errno.EFAULT;
                if (Probe(pfn) != Errno.Ok) return Errno.EINVAL;
                Keep(peer);
                return Errno.Ok;
            }

            private void Keep(DevPagemap p) => Remember(p);
            private void Remember(DevPagemap p) => _peer = p;

        """);

    [Test]
    public Task Pagemap_stored_before_every_return_is_silent() => Verify("""
            public Errno Import(Machine machine, ulong pfn)
            {
                var peer = DevPagemap.Get(machine, pfn);
                if (peer == null) return Errno.EFAULT;
                _peer = peer;
                if (peer.Kind != DevicePageKind.Private) return Errno.EOPNOTSUPP;
                return Errno.Ok;
            }

        """);

    [Test]
    public Task Early_path_that_puts_and_late_store_is_silent() => Verify("""
            public Errno Import(Machine machine, ulong pfn)
            {
                var peer = DevPagemap.Get(machine, pfn);
                if (peer == null) return Errno.EFAULT;
                if (peer.Kind != DevicePageKind.Private) { peer.Put(); return Errno.EOPNOTSUPP; }
                _peers.Add(peer);
                return Errno.Ok;
            }

        """);

    [Test]
    public Task Dma_unmapped_when_the_ring_is_full_is_silent() => Verify("""
            public bool Post(ulong pfn)
            {
                if (!_iommu.TryDmaMap(pfn, 1, false, out ulong bus)) return false;
                if (_head == _ring.Length) { _iommu.DmaUnmap(bus, 1); return false; }
                _ring[_head++] = bus;
                return true;
            }

        """);

    [Test]
    public Task Mm_kept_on_every_path_is_silent() => Verify("""
            public Errno Bind(AddressSpace mm, ulong start)
            {
                if (!mm.TryGet()) return Errno.EFAULT;
                _mm = mm;
                return Probe(start);
            }

        """);

    [Test]
    public Task Store_two_helpers_deep_on_every_path_is_silent() => Verify("""
            public Errno Import(Machine machine, ulong pfn)
            {
                var peer = DevPagemap.Get(machine, pfn);
                if (peer == null) return Errno.EFAULT;
                if (Probe(pfn) != Errno.Ok) { peer.Put(); return Errno.EINVAL; }
                Keep(peer);
                return Errno.Ok;
            }

            private void Keep(DevPagemap p) => Remember(p);
            private void Remember(DevPagemap p) => _peer = p;

        """);
}
