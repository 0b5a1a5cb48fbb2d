using Hmm.Dsl;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Policy;

/// <summary>The UVM module parameters and their published defaults (drivers.md C.9).</summary>
public sealed class UvmPolicyOptionsTests
{
    [Test]
    public void Defaults_are_the_published_module_parameters()
    {
        var o = UvmPolicyOptions.Default;
        Assert.Multiple(() =>
        {
            Assert.That(o.FaultBatchCount, Is.EqualTo(256));
            Assert.That(o.ReplayPolicy, Is.EqualTo(ReplayPolicy.BatchFlush));
            Assert.That(o.ReplayUpdatePutRatioPercent, Is.EqualTo(50));
            Assert.That(o.MaxBatchesPerService, Is.EqualTo(20));
            Assert.That(o.MaxThrottledBatchesPerService, Is.EqualTo(5));
            Assert.That(o.ThrashingEnabled, Is.True);
            Assert.That(o.ThrashingThreshold, Is.EqualTo(3));
            Assert.That(o.ThrashingPinThreshold, Is.EqualTo(10));
            Assert.That(o.ThrashingLapseNs, Is.EqualTo(500_000));
            Assert.That(o.ThrashingNapNs, Is.EqualTo(500_000), "nap = 1 × lapse");
            Assert.That(o.ThrashingEpochNs, Is.EqualTo(1_000_000_000), "epoch = 2000 × lapse = 1 s");
            Assert.That(o.ThrashingPinNs, Is.EqualTo(150_000_000), "pin = 300 × lapse = 150 ms");
            Assert.That(o.ThrashingMaxResets, Is.EqualTo(4));
            Assert.That(o.PrefetchEnabled, Is.True);
            Assert.That(o.PrefetchThresholdPercent, Is.EqualTo(51));
            Assert.That(o.PrefetchMinFaults, Is.EqualTo(1));
            Assert.That(o.AccessCounterThreshold, Is.EqualTo(256));
            Assert.That(o.AccessCounterBatchCount, Is.EqualTo(256));
            Assert.That(o.AccessCounterMigration, Is.False, "−1 = ATS only; the simulated machine has no ATS");
            Assert.That(o.VramChunks, Is.Null);
        });
    }

    [Test]
    public void Derived_times_follow_a_custom_lapse()
    {
        var o = new UvmPolicyOptions { ThrashingLapseNs = 100_000, ThrashingNapLapses = 2 };
        Assert.That(o.ThrashingNapNs, Is.EqualTo(200_000));
        Assert.That(o.ThrashingEpochNs, Is.EqualTo(200_000_000));
        Assert.That(o.ThrashingPinNs, Is.EqualTo(30_000_000));
    }

    [Test]
    public void Values_outside_the_module_parameter_ranges_are_rejected()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => new UvmPolicyOptions { ThrashingThreshold = 8 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>(), "3-bit counter");
            Assert.That(() => new UvmPolicyOptions { ThrashingPinThreshold = 256 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => new UvmPolicyOptions { ThrashingNapLapses = 101 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => new UvmPolicyOptions { PrefetchThresholdPercent = 0 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => new UvmPolicyOptions { PrefetchMinFaults = 21 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => new UvmPolicyOptions { AccessCounterThreshold = 65536 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => new UvmPolicyOptions { FaultBatchCount = 0 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => new UvmPolicyOptions { VramChunks = 0 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(new UvmPolicyOptions { ThrashingThreshold = 7, ThrashingPinThreshold = 255 }.Validate().ThrashingThreshold, Is.EqualTo(7));
        });
    }
}
