using Hmm.Runtime.Memory;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Workloads;

/// <summary>nouveau's bind walks the range in 2 MiB units (drivers.md A.7, A.8).</summary>
public sealed class BindPlanTests
{
    [Test]
    public void An_unaligned_range_splits_at_2_MiB_boundaries()
    {
        ulong start = 0x4000_0000 + 3 * Page.Size + 100, end = 0x4000_0000 + 2 * Page.PmdSize + 5 * Page.Size;
        Span<VaRange> units = stackalloc VaRange[4];
        int n = BindPlan.Split(start, end, units);
        Assert.That(n, Is.EqualTo(3));
        Assert.That(BindPlan.UnitCount(start, end), Is.EqualTo(3));
        Assert.That(units[0], Is.EqualTo(new VaRange(0x4000_0000 + 3 * Page.Size, 0x4000_0000 + Page.PmdSize)));
        Assert.That(units[1], Is.EqualTo(new VaRange(0x4000_0000 + Page.PmdSize, 0x4000_0000 + 2 * Page.PmdSize)));
        Assert.That(units[2], Is.EqualTo(new VaRange(0x4000_0000 + 2 * Page.PmdSize, 0x4000_0000 + 2 * Page.PmdSize + 5 * Page.Size)));
        Assert.That(units[1].Pages, Is.EqualTo(512));
    }

    [Test]
    public void An_empty_range_has_no_unit_and_a_short_span_throws()
    {
        Assert.That(BindPlan.UnitCount(0x1000, 0x1000), Is.Zero);
        Assert.That(BindPlan.Split(0x1000, 0x1000, Span<VaRange>.Empty), Is.Zero);
        Assert.That(() => BindPlan.Split(0, 3 * Page.PmdSize, new VaRange[2]), Throws.ArgumentException);
    }
}
