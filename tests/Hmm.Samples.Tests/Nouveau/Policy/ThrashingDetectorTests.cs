using Hmm.Runtime.Memory;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Policy;

/// <summary>
/// UVM thrashing detection and mitigation (drivers.md C.3, defaults C.9): 3 events within 500 µs
/// → thrashing; throttling periods of 1 × lapse alternating the free processor; pin after 10
/// periods; unpin after 300 × lapse = 150 ms; block reset after 2000 × lapse = 1 s of quiet, at most
/// 4 times; evictions never count. All times are simulated nanoseconds.
/// </summary>
public sealed class ThrashingDetectorTests
{
    private const ulong Va = 0x4000_0000 + 5 * Page.Size;
    private const long Us = 1_000, Ms = 1_000_000;
    private GpuDriverCounters _counters = null!;

    [SetUp]
    public void Create() => _counters = new GpuDriverCounters();

    private ThrashingDetector Detector(UvmPolicyOptions? options = null) => new(options ?? UvmPolicyOptions.Default, _counters);

    /// <summary>Drives the page to thrashing: CPU and GPU migrate it alternately every 100 µs, three events.</summary>
    private static long MakeThrashing(ThrashingDetector d, long t0 = 0)
    {
        d.RecordEvent(Va, ProcessorIds.Gpu, t0, ThrashingCause.FaultMigration);
        d.RecordEvent(Va, ProcessorIds.Cpu, t0 + 100 * Us, ThrashingCause.FaultMigration);
        d.RecordEvent(Va, ProcessorIds.Gpu, t0 + 200 * Us, ThrashingCause.FaultMigration);
        return t0 + 200 * Us;
    }

    [Test]
    public void Three_events_within_the_lapse_mark_the_page_thrashing()
    {
        var d = Detector();
        long t = MakeThrashing(d);
        Assert.Multiple(() =>
        {
            Assert.That(d.IsThrashing(Va, t), Is.True);
            Assert.That(d.EventsOf(Va), Is.EqualTo(3));
            Assert.That(_counters.ThrashingDetected, Is.EqualTo(1));
            Assert.That(_counters.ThrashingEvents, Is.EqualTo(2), "the 2nd and 3rd events fell within the lapse of their predecessor");
            Assert.That(d.IsThrashing(Va + Page.Size, t), Is.False, "tracking is per page");
        });
    }

    [Test]
    public void Two_events_are_not_thrashing()
    {
        var d = Detector();
        d.RecordEvent(Va, ProcessorIds.Gpu, 0, ThrashingCause.FaultMigration);
        d.RecordEvent(Va, ProcessorIds.Cpu, 100 * Us, ThrashingCause.FaultMigration);
        Assert.That(d.IsThrashing(Va, 100 * Us), Is.False);
        Assert.That(d.GetHint(Va, ProcessorIds.Gpu, 150 * Us), Is.EqualTo(ThrashingHint.None));
    }

    [Test]
    public void Events_exactly_one_lapse_apart_do_not_count_but_one_nanosecond_less_does()
    {
        var apart = Detector();
        for (int i = 0; i < 5; i++) apart.RecordEvent(Va, i % 2, i * 500 * Us, ThrashingCause.FaultMigration);
        Assert.That(apart.IsThrashing(Va, 2 * Ms), Is.False, "a gap of exactly 500 µs is not within the lapse");

        var close = Detector();
        for (int i = 0; i < 3; i++) close.RecordEvent(Va, i % 2, i * (500 * Us - 1), ThrashingCause.FaultMigration);
        Assert.That(close.IsThrashing(Va, Ms), Is.True);
    }

    [Test]
    public void Evictions_are_not_thrashing_events()
    {
        var d = Detector();
        for (int i = 0; i < 6; i++) d.RecordEvent(Va, ProcessorIds.Cpu, i * 10 * Us, ThrashingCause.Eviction);
        Assert.Multiple(() =>
        {
            Assert.That(d.IsThrashing(Va, Ms), Is.False);
            Assert.That(d.EventsOf(Va), Is.Zero);
            Assert.That(_counters.ThrashingEvents, Is.Zero);
        });
    }

    [Test]
    public void A_user_hint_resets_the_page()
    {
        var d = Detector();
        long t = MakeThrashing(d);
        d.RecordEvent(Va, ProcessorIds.Gpu, t + Us, ThrashingCause.UserHint);
        Assert.That(d.IsThrashing(Va, t + Us), Is.False);
    }

    [Test]
    public void Throttling_leaves_one_processor_free_per_period_and_alternates()
    {
        var d = Detector();
        long t = MakeThrashing(d) + Us;
        // Period 1 opened by the GPU: the GPU runs free, the CPU is throttled until the period ends.
        Assert.That(d.GetHint(Va, ProcessorIds.Gpu, t).Kind, Is.EqualTo(ThrashingHintKind.None));
        var cpu = d.GetHint(Va, ProcessorIds.Cpu, t + 10 * Us);
        Assert.That(cpu, Is.EqualTo(new ThrashingHint(ThrashingHintKind.Throttle, t + 500 * Us)));
        // Period 2 (after nap = 1 × lapse): the exemption moves to the CPU.
        long t2 = t + 500 * Us;
        Assert.That(d.GetHint(Va, ProcessorIds.Gpu, t2).Kind, Is.EqualTo(ThrashingHintKind.Throttle));
        Assert.That(d.GetHint(Va, ProcessorIds.Cpu, t2 + Us).Kind, Is.EqualTo(ThrashingHintKind.None));
        Assert.That(d.ThrottlePeriodsOf(Va), Is.EqualTo(2));
    }

    [Test]
    public void The_page_is_pinned_to_system_memory_at_the_tenth_throttling_period()
    {
        var d = Detector();
        long t = MakeThrashing(d) + Us;
        for (int period = 1; period <= 9; period++)
        {
            var h = d.GetHint(Va, ProcessorIds.Gpu, t + (period - 1) * 500 * Us);
            Assert.That(h.Kind, Is.Not.EqualTo(ThrashingHintKind.Pin), $"period {period}");
        }
        Assert.That(d.ThrottlePeriodsOf(Va), Is.EqualTo(9));
        long pinAt = t + 9 * 500 * Us;
        var pin = d.GetHint(Va, ProcessorIds.Gpu, pinAt);
        Assert.Multiple(() =>
        {
            Assert.That(pin, Is.EqualTo(new ThrashingHint(ThrashingHintKind.Pin, pinAt + 150 * Ms, ProcessorIds.Cpu)));
            Assert.That(_counters.Pins, Is.EqualTo(1));
            Assert.That(d.PinnedPages, Is.EqualTo(1));
            Assert.That(d.GetHint(Va, ProcessorIds.Cpu, pinAt + Ms).Kind, Is.EqualTo(ThrashingHintKind.Pin), "every processor sees the pin");
        });
    }

    private static long Pin(ThrashingDetector d)
    {
        long t = MakeThrashing(d) + Us;
        for (int period = 0; period < 10; period++) d.GetHint(Va, ProcessorIds.Gpu, t + period * 500 * Us);
        Assert.That(d.IsPinned(Va, t + 9 * 500 * Us), Is.True);
        return t + 9 * 500 * Us;
    }

    [Test]
    public void A_pin_expires_after_150_ms_and_the_page_is_reported_for_unmapping()
    {
        var d = Detector();
        long pinAt = Pin(d);
        var expired = new ulong[4];
        Assert.That(d.CollectExpiredPins(pinAt + 150 * Ms - 1, expired), Is.Zero, "one ns early");
        Assert.That(d.GetHint(Va, ProcessorIds.Gpu, pinAt + 150 * Ms - 1).Kind, Is.EqualTo(ThrashingHintKind.Pin));
        Assert.That(d.CollectExpiredPins(pinAt + 150 * Ms, expired), Is.EqualTo(1));
        Assert.Multiple(() =>
        {
            Assert.That(expired[0], Is.EqualTo(Va));
            Assert.That(_counters.Unpins, Is.EqualTo(1));
            Assert.That(d.PinnedPages, Is.Zero);
            Assert.That(d.GetHint(Va, ProcessorIds.Gpu, pinAt + 150 * Ms).Kind, Is.EqualTo(ThrashingHintKind.None), "re-evaluated from scratch");
        });
    }

    [Test]
    public void A_pin_of_zero_lapses_never_expires()
    {
        var d = Detector(new UvmPolicyOptions { ThrashingPinLapses = 0 });
        long pinAt = Pin(d);
        Span<ulong> expired = stackalloc ulong[4];
        Assert.That(d.CollectExpiredPins(pinAt + 3_600_000 * Ms, expired), Is.Zero);
        Assert.That(d.GetHint(Va, ProcessorIds.Gpu, pinAt + 3_600_000 * Ms).Kind, Is.EqualTo(ThrashingHintKind.Pin));
    }

    [Test]
    public void Throttling_periods_survive_quiet_shorter_than_the_epoch_and_are_reset_after_one_second()
    {
        foreach (var (quiet, expectedPeriods, resets) in new[] { (999 * Ms, 5, 0), (1000 * Ms, 0, 1) })
        {
            var counters = new GpuDriverCounters();
            var d = new ThrashingDetector(UvmPolicyOptions.Default, counters);
            long t = MakeThrashing(d) + Us;
            for (int p = 0; p < 5; p++) d.GetHint(Va, ProcessorIds.Gpu, t + p * 500 * Us);
            long last = t + 4 * 500 * Us;
            // Quiet is measured from the last time thrashing was seen (the last hint).
            long after = last + quiet;
            d.RecordEvent(Va, ProcessorIds.Gpu, after, ThrashingCause.FaultMigration);
            Assert.Multiple(() =>
            {
                Assert.That(d.ThrottlePeriodsOf(Va), Is.EqualTo(expectedPeriods), $"quiet {quiet / Ms} ms");
                Assert.That(d.ResetsOf(Va), Is.EqualTo(resets));
                Assert.That(counters.ThrashingResets, Is.EqualTo(resets));
            });
        }
    }

    [Test]
    public void A_block_is_reset_at_most_four_times()
    {
        var d = Detector();
        long t = 0;
        for (int round = 0; round < 6; round++)
        {
            t = MakeThrashing(d, t) + 1000 * Ms;
            d.RecordEvent(Va, ProcessorIds.Cpu, t, ThrashingCause.FaultMigration);
        }
        Assert.That(d.ResetsOf(Va), Is.EqualTo(4));
        Assert.That(_counters.ThrashingResets, Is.EqualTo(4));
    }

    [Test]
    public void Nothing_is_reset_while_a_page_of_the_block_is_pinned()
    {
        var d = Detector(new UvmPolicyOptions { ThrashingPinLapses = 0 });
        long pinAt = Pin(d);
        d.RecordEvent(Va + Page.Size, ProcessorIds.Gpu, pinAt + 2000 * Ms, ThrashingCause.FaultMigration);
        Assert.That(d.ResetsOf(Va), Is.Zero);
        Assert.That(d.IsPinned(Va, pinAt + 2000 * Ms), Is.True);
    }

    [Test]
    public void Every_threshold_is_a_per_run_parameter()
    {
        var d = Detector(new UvmPolicyOptions { ThrashingThreshold = 2, ThrashingLapseNs = 50 * Us, ThrashingPinThreshold = 1 });
        d.RecordEvent(Va, ProcessorIds.Gpu, 0, ThrashingCause.FaultMigration);
        d.RecordEvent(Va, ProcessorIds.Cpu, 60 * Us, ThrashingCause.FaultMigration);
        Assert.That(d.IsThrashing(Va, 60 * Us), Is.False, "60 µs exceeds a 50 µs lapse");
        d.RecordEvent(Va, ProcessorIds.Gpu, 100 * Us, ThrashingCause.FaultMigration);
        Assert.That(d.IsThrashing(Va, 100 * Us), Is.True, "two events within 50 µs with threshold 2");
        Assert.That(d.GetHint(Va, ProcessorIds.Gpu, 101 * Us).Kind, Is.EqualTo(ThrashingHintKind.Pin), "pin threshold 1: the first period pins");
    }

    [Test]
    public void Disabled_detection_never_hints()
    {
        var d = Detector(new UvmPolicyOptions { ThrashingEnabled = false });
        MakeThrashing(d);
        Assert.That(d.IsThrashing(Va, Ms), Is.False);
        Assert.That(d.GetHint(Va, ProcessorIds.Cpu, Ms), Is.EqualTo(ThrashingHint.None));
    }
}
