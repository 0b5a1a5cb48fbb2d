using Hmm.Runtime.Memory;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Policy;

/// <summary>
/// UVM's tree-based density prefetch (drivers.md C.4): the largest subtree with
/// occupied·100 &gt; size·51 around each faulted page, big-page growth, thrashing and VMA clipping.
/// </summary>
public sealed class DensityPrefetcherTests
{
    private static readonly BlockMask All = BlockMask.Range(0, Page.PmdPages);

    private static BlockMask Every(int k)
    {
        var m = default(BlockMask);
        for (int p = 0; p < Page.PmdPages; p += k) m.Set(p);
        return m;
    }

    [Test]
    public void A_lone_fault_grows_to_its_64_KiB_big_page()
    {
        var faulted = default(BlockMask);
        faulted.Set(37);
        var prefetch = DensityPrefetcher.Compute(default, faulted, default, All, 51, growToBigPages: true);
        var expected = BlockMask.Range(32, 48);
        expected.Clear(37);
        Assert.That(prefetch.SameAs(expected), Is.True, $"got {prefetch.Count()} pages");
        Assert.That(prefetch.Count(), Is.EqualTo(15));
    }

    [Test]
    public void A_lone_fault_without_big_page_growth_prefetches_nothing()
    {
        var faulted = default(BlockMask);
        faulted.Set(37);
        Assert.That(DensityPrefetcher.Compute(default, faulted, default, All, 51, growToBigPages: false).IsEmpty(), Is.True);
    }

    [Test]
    public void Nine_of_sixteen_exceeds_51_percent_but_eight_of_sixteen_does_not()
    {
        // Subtree [16, 32): 8 pages resident at the destination.
        var resident = BlockMask.Range(16, 24);
        var faulted = default(BlockMask);
        faulted.Set(24);
        var nine = DensityPrefetcher.Compute(resident, faulted, default, All, 51, growToBigPages: false);
        Assert.That(nine.SameAs(BlockMask.Range(25, 32)), Is.True, "9/16 = 56 % > 51 %: the rest of the 16-page subtree");

        var fewer = BlockMask.Range(16, 23);
        var eight = DensityPrefetcher.Compute(fewer, faulted, default, All, 51, growToBigPages: false);
        // 8/16 = 50 % fails, and so does every smaller subtree around page 24 but the leaf.
        Assert.That(eight.IsEmpty(), Is.True);
    }

    [Test]
    public void The_largest_qualifying_subtree_wins_even_past_a_failing_level()
    {
        // Around the fault at 40 every subtree from 2 to 32 pages holds only it (≤ 50 %), but
        // [0, 64) holds 32 resident + 1 faulted: 33·100 = 3300 > 64·51 = 3264.
        var resident = BlockMask.Range(0, 32);
        var faulted = default(BlockMask);
        faulted.Set(40);
        var prefetch = DensityPrefetcher.Compute(resident, faulted, default, All, 51, growToBigPages: false);
        var expected = BlockMask.Range(32, 64);
        expected.Clear(40);
        Assert.That(prefetch.SameAs(expected), Is.True, $"got {prefetch.Count()} pages");
    }

    [TestCase(1, 0)]
    [TestCase(2, 256)]
    [TestCase(4, 384)]
    [TestCase(8, 448)]
    public void Touching_one_of_every_k_pages_migrates_the_whole_block_with_big_page_growth(int k, int prefetched)
    {
        var faulted = Every(k);
        var prefetch = DensityPrefetcher.Compute(default, faulted, default, All, 51, growToBigPages: true);
        Assert.That(prefetch.Count(), Is.EqualTo(prefetched));
        Assert.That(prefetch.Count() + faulted.Count(), Is.EqualTo(Page.PmdPages));
    }

    [TestCase(2)]
    [TestCase(4)]
    [TestCase(8)]
    public void Touching_one_of_every_k_pages_without_growth_stays_at_or_below_50_percent_and_prefetches_nothing(int k)
        => Assert.That(DensityPrefetcher.Compute(default, Every(k), default, All, 51, growToBigPages: false).IsEmpty(), Is.True);

    [Test]
    public void A_lower_threshold_turns_half_density_into_whole_block_migration()
    {
        var prefetch = DensityPrefetcher.Compute(default, Every(2), default, All, 49, growToBigPages: false);
        Assert.That(prefetch.Count(), Is.EqualTo(256));
    }

    [Test]
    public void Thrashing_pages_are_never_prefetched_and_block_big_page_growth()
    {
        var faulted = default(BlockMask);
        faulted.Set(0);
        var thrashing = default(BlockMask);
        thrashing.Set(5);
        var prefetch = DensityPrefetcher.Compute(default, faulted, thrashing, All, 51, growToBigPages: true);
        Assert.That(prefetch.IsEmpty(), Is.True, "the big page holding a thrashing page is not grown");

        var resident = BlockMask.Range(0, 15);
        prefetch = DensityPrefetcher.Compute(resident, faulted, thrashing, All, 51, growToBigPages: false);
        Assert.That(prefetch.Test(5), Is.False);
        Assert.That(prefetch.Test(15), Is.True);
    }

    [Test]
    public void The_prefetch_is_clipped_to_the_allowed_pages()
    {
        var faulted = default(BlockMask);
        faulted.Set(3);
        var allowed = BlockMask.Range(0, 8);
        var prefetch = DensityPrefetcher.Compute(default, faulted, default, allowed, 51, growToBigPages: true);
        var expected = BlockMask.Range(0, 8);
        expected.Clear(3);
        Assert.That(prefetch.SameAs(expected), Is.True);
    }

    [Test]
    public void First_touch_populates_the_allowed_block_except_the_faulted_pages()
    {
        var faulted = default(BlockMask);
        faulted.Set(100);
        var prefetch = DensityPrefetcher.FirstTouch(faulted, All);
        Assert.That(prefetch.Count(), Is.EqualTo(511));
        Assert.That(prefetch.Test(100), Is.False);
    }

    [TestCase(0)]
    [TestCase(101)]
    public void The_threshold_must_be_1_to_100(int threshold)
        => Assert.That(() => DensityPrefetcher.Compute(default, default, default, All, threshold, true), Throws.InstanceOf<ArgumentOutOfRangeException>());
}
