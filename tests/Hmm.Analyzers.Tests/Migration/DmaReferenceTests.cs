using Hmm.Analyzers.Tests.Support;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>
/// HMM1025 on DMA mappings (Iommu.TryDmaMap / DmaUnmap): a mapping unmapped on every path, or
/// stored in the device's table (its teardown unmaps it) — a store hands the mapping over.
/// </summary>
public sealed class DmaReferenceTests
{
    private const string Head = """
        class Nic
        {
            private Iommu _iommu = null!;
            private readonly ulong[] _mtt = new ulong[16];
            private long _posted;

        """;

    private static Task Verify(string members) => HmmVerifier.VerifyAsync(Head + members + "}\n");

    [Test]
    public Task Error_path_without_unmap_fires() => Verify("""
            public Errno Post(ulong pfn, int len)
            {
                if (!{|HMM1025:_iommu.TryDmaMap(pfn, 1, false, out ulong bus)|}) return Errno.ENOMEM;
                if (len > 4096) return Errno.EINVAL;
                _posted += (long)bus;
                _iommu.DmaUnmap(bus, 1);
                return Errno.Ok;
            }

        """);

    [Test]
    public Task Throw_between_map_and_unmap_fires() => Verify("""
            public void Post(ulong pfn, int len)
            {
                if (!{|HMM1025:_iommu.TryDmaMap(pfn, 1, false, out ulong bus)|}) return;
                if (len > 4096) throw new ArgumentOutOfRangeException(nameof(len));
                _posted += (long)bus;
                _iommu.DmaUnmap(bus, 1);
            }

        """);

    [Test]
    public Task Helper_two_deep_that_never_unmaps_fires() => Verify("""
            public void Post(ulong pfn)
            {
                if ({|HMM1025:_iommu.TryDmaMap(pfn, 1, false, out ulong bus)|}) Ring(bus);
            }

            private void Ring(ulong bus) => Doorbell(bus);
            private void Doorbell(ulong bus) => _posted += (long)bus;

        """);

    [Test]
    public Task Unmap_on_every_path_is_silent() => Verify("""
            public Errno Post(ulong pfn, int len)
            {
                if (!_iommu.TryDmaMap(pfn, 1, false, out ulong bus)) return Errno.ENOMEM;
                try
                {
                    if (len > 4096) return Errno.EINVAL;
                    _posted += (long)bus;
                    return Errno.Ok;
                }
                finally { _iommu.DmaUnmap(bus, 1); }
            }

        """);

    [Test]
    public Task Mapping_stored_in_the_device_table_is_silent() => Verify("""
            public Errno Map(int index, ulong pfn)
            {
                if (!_iommu.TryDmaMap(pfn, 1, true, out ulong bus)) return Errno.ENOMEM;
                _mtt[index] = bus;   // unmapped when the entry is invalidated
                return Errno.Ok;
            }

            public void Invalidate(int index)
            {
                if (_mtt[index] != 0) _iommu.DmaUnmap(_mtt[index], 1);
                _mtt[index] = 0;
            }

        """);

    [Test]
    public Task Unmap_two_helpers_deep_is_silent() => Verify("""
            public void Post(ulong pfn)
            {
                if (_iommu.TryDmaMap(pfn, 1, false, out ulong bus)) Complete(bus);
            }

            private void Complete(ulong bus) { _posted++; Unmap(bus); }
            private void Unmap(ulong bus) => _iommu.DmaUnmap(bus, 1);

        """);
}
