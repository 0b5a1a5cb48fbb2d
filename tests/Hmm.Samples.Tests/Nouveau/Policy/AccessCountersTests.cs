using Hmm.Runtime.Memory;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Policy;

/// <summary>UVM access counters (drivers.md C.5): a notification at 256 remote accesses per 2 MiB region, 32 sub-regions of 64 KiB.</summary>
public sealed class AccessCountersTests
{
    private const ulong Region = 0x8000_0000;

    [Test]
    public void The_256th_access_to_a_region_raises_one_notification_with_the_touched_sub_regions()
    {
        var counters = new GpuDriverCounters();
        var ac = new AccessCounters(256, counters);
        for (int i = 0; i < 255; i++)
            Assert.That(ac.RecordAccess(Region + (ulong)(i % 2) * 3 * 65536, i), Is.False);
        Assert.That(ac.Pending, Is.Zero);
        Assert.That(ac.CountOf(Region), Is.EqualTo(255));
        Assert.That(ac.RecordAccess(Region + 31 * 65536 + 8, 255), Is.True);

        Span<AccessCounterNotification> batch = stackalloc AccessCounterNotification[8];
        Assert.That(ac.Fetch(batch), Is.EqualTo(1));
        var n = batch[0];
        Assert.Multiple(() =>
        {
            Assert.That(n, Is.EqualTo(new AccessCounterNotification(Region, (1u << 0) | (1u << 3) | (1u << 31), 256, 255)));
            Assert.That(n.Pages().Count(), Is.EqualTo(3 * 16));
            Assert.That(n.Pages().Test(3 * 16), Is.True);
            Assert.That(n.Pages().Test(16), Is.False);
            Assert.That(ac.CountOf(Region), Is.Zero, "the region's counter restarts");
            Assert.That(counters.AccessCounterNotifications, Is.EqualTo(1));
        });
    }

    [Test]
    public void Regions_count_independently()
    {
        var ac = new AccessCounters(4, new GpuDriverCounters());
        for (int i = 0; i < 3; i++)
        {
            ac.RecordAccess(Region, 0);
            ac.RecordAccess(Region + Page.PmdSize, 0);
        }
        Assert.That(ac.Pending, Is.Zero);
        ac.RecordAccess(Region + Page.PmdSize + 8, 0);
        Span<AccessCounterNotification> batch = stackalloc AccessCounterNotification[2];
        Assert.That(ac.Fetch(batch), Is.EqualTo(1));
        Assert.That(batch[0].RegionVa, Is.EqualTo(Region + Page.PmdSize));
        Assert.That(ac.CountOf(Region), Is.EqualTo(3));
    }

    [Test]
    public void Notifications_are_fetched_in_batches_oldest_first()
    {
        var ac = new AccessCounters(1, new GpuDriverCounters());
        for (int r = 0; r < 5; r++) ac.RecordAccess(Region + (ulong)r * Page.PmdSize, r);
        Span<AccessCounterNotification> batch = stackalloc AccessCounterNotification[3];
        Assert.That(ac.Fetch(batch), Is.EqualTo(3));
        Assert.That(batch[0].RegionVa, Is.EqualTo(Region));
        Assert.That(ac.Fetch(batch), Is.EqualTo(2));
        Assert.That(batch[1].RegionVa, Is.EqualTo(Region + 4 * Page.PmdSize));
        Assert.That(ac.Fetch(batch), Is.Zero);
    }

    [Test]
    public void ClearAll_forgets_partial_counts()
    {
        var ac = new AccessCounters(3, new GpuDriverCounters());
        ac.RecordAccess(Region, 0);
        ac.RecordAccess(Region, 0);
        ac.ClearAll();
        Assert.That(ac.RecordAccess(Region, 0), Is.False);
        Assert.That(ac.CountOf(Region), Is.EqualTo(1));
    }

    [TestCase(0)]
    [TestCase(65536)]
    public void The_threshold_must_be_1_to_65535(int threshold)
        => Assert.That(() => new AccessCounters(threshold, new GpuDriverCounters()), Throws.InstanceOf<ArgumentOutOfRangeException>());
}
