using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Hmm.Runtime.Telemetry;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Telemetry;

/// <summary>SimClock, CostModel defaults (reference/drivers.md E) and the "Hmm.Runtime" meter.</summary>
public class TelemetryTests
{
    // E row 3: BW(size) = (2a/π)·atan(b·size_KiB), a = 12 GB/s, b = 0.07292 → 4 KiB ≈ 2.2, 16 KiB ≈ 6.6,
    // 64 KiB ≈ 10.4, 256 KiB ≈ 11.6, 2 MiB ≈ 11.95 GB/s.
    [TestCase(4L << 10, 2.2, 0.05)]
    [TestCase(16L << 10, 6.6, 0.05)]
    [TestCase(64L << 10, 10.4, 0.05)]
    [TestCase(256L << 10, 11.6, 0.05)]
    [TestCase(2L << 20, 11.95, 0.01)]
    public void PcieCurveMatchesPublishedFigures(long bytes, double gbps, double tolerance)
        => Assert.That(CostModel.Default.BandwidthGBps(bytes), Is.EqualTo(gbps).Within(tolerance));

    // E row 3: transfer time = size / BW(size); small transfers are latency bound.
    [Test]
    public void TransferNsIsSizeOverBandwidth()
    {
        var m = CostModel.Default;
        Assert.That(m.TransferNs(0), Is.Zero);
        Assert.That(m.TransferNs(4096), Is.EqualTo(4096 / m.BandwidthGBps(4096)).Within(1.0));
        Assert.That(m.TransferNs(4096), Is.InRange(1800, 1950), "≈ 1.9 µs for 4 KiB at ≈ 2.17 GB/s");
        Assert.That(m.TransferNs(2L << 20), Is.InRange(175_000, 176_000), "≈ 175.5 µs for 2 MiB at ≈ 11.95 GB/s");
        Assert.That(512 * m.TransferNs(4096), Is.GreaterThan(5 * m.TransferNs(2L << 20)), "why UVM grows migrations");
    }

    // E rows 1, 2, 4, 6, 10: the sourced defaults.
    [Test]
    public void DefaultsComeFromSectionE()
    {
        var m = new CostModel();
        Assert.That(m.FaultNs, Is.EqualTo(45_000), "row 1: 45 µs per fault");
        Assert.That(m.KernelLaunchNs, Is.EqualTo(150_000), "row 2: 150 µs launch");
        Assert.That(m.FaultBatchNs, Is.EqualTo(80_000), "row 4: 30.84 ms / 384 groups ≈ 80 µs");
        Assert.That((double)m.FaultBatchNs, Is.EqualTo(30.84e6 / 384).Within(500));
        Assert.That(m.GpuToGpuHostCostFactor, Is.LessThanOrEqualTo(0.5), "row 6: below half");
        Assert.That(m.MigrationNs(4096, gpuToGpu: true), Is.LessThan(m.MigrationNs(4096, gpuToGpu: false)));
        Assert.That(m.OdpFaultServiceNs(pathological: true) / m.OdpFaultServiceNs(pathological: false), Is.InRange(1_000, 10_000), "row 10: 3–4 orders of magnitude");
        Assert.That(m.FaultBatchServiceNs(3), Is.EqualTo(80_000 + 3 * 45_000));
        Assert.That(m with { FaultNs = 5_000 }, Is.Not.EqualTo(m), "a record: tweak with `with`");
    }

    // ARCHITECTURE §7: SimClock is thread-safe and monotonic.
    [Test]
    public void SimClockAdvancesAtomically()
    {
        var clock = new SimClock();
        Parallel.For(0, 1000, _ => clock.Advance(45_000));
        Assert.That(clock.Now, Is.EqualTo(45_000_000));
        Assert.That(clock.AdvanceTo(10), Is.EqualTo(45_000_000), "never goes back");
        Assert.That(clock.AdvanceTo(50_000_000), Is.EqualTo(50_000_000));
        Assert.That(clock.Elapsed, Is.EqualTo(TimeSpan.FromMilliseconds(50)));
        Assert.Throws<ArgumentOutOfRangeException>(() => clock.Advance(-1));
    }

    // The per-device counters are published on the "Hmm.Runtime" Meter with a device tag; a MeterListener reads them.
    [Test]
    public void DeviceCountersAreObservableWithAMeterListener()
    {
        string name = "gpu-" + Guid.NewGuid().ToString("N");
        var seen = new ConcurrentDictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == DeviceMeters.MeterName) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == "device" && (string?)tag.Value == name) seen.AddOrUpdate(instrument.Name, value, (_, v) => v + value);
        });
        listener.Start();

        var meters = new DeviceMeters(name);
        meters.AddFaults(7);
        meters.AddFaults(3);
        meters.AddFaultBatches(2);
        meters.AddReplays(2);
        meters.AddCancels(1);
        meters.AddPagesMigratedToDevice(16);
        meters.AddPagesMigratedFromDevice(4);
        meters.AddBytesCopied(20 * 4096);
        meters.AddTlbInvalidations(5);
        meters.AddP2pMaps(1);

        Assert.That(seen["hmm.device.faults"], Is.EqualTo(10));
        Assert.That(seen["hmm.device.fault_batches"], Is.EqualTo(2));
        Assert.That(seen["hmm.device.replays"], Is.EqualTo(2));
        Assert.That(seen["hmm.device.cancels"], Is.EqualTo(1));
        Assert.That(seen["hmm.device.pages_migrated_to_device"], Is.EqualTo(16));
        Assert.That(seen["hmm.device.pages_migrated_from_device"], Is.EqualTo(4));
        Assert.That(seen["hmm.device.bytes_copied"], Is.EqualTo(20 * 4096));
        Assert.That(seen["hmm.device.tlb_invalidations"], Is.EqualTo(5));
        Assert.That(seen["hmm.device.p2p_maps"], Is.EqualTo(1));
        Assert.That(meters.Faults, Is.EqualTo(10));
        Assert.That(DeviceMeters.Meter.Name, Is.EqualTo("Hmm.Runtime"));
    }
}
