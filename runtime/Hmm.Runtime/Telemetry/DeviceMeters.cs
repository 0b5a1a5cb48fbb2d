using System.Diagnostics.Metrics;

namespace Hmm.Runtime.Telemetry;

/// <summary>
/// Per-device event counters (the statistics real drivers keep — nouveau fault counts, UVM
/// procfs, mlx5 ODP counters — drivers.md B.10, C.8) published through the
/// <see cref="System.Diagnostics.Metrics"/> <see cref="Meter"/> named <see cref="MeterName"/>.
/// Every measurement carries a <c>device</c> tag with <see cref="Device"/>; listen with a
/// <see cref="MeterListener"/> or dotnet-counters. Running totals are also kept per instance.
/// </summary>
public sealed class DeviceMeters
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "Hmm.Runtime";

    private static readonly Meter s_meter = new(MeterName, "1.0");
    private static readonly Counter<long> s_faults = s_meter.CreateCounter<long>("hmm.device.faults", "{fault}", "Device page faults fetched from the fault buffer");
    private static readonly Counter<long> s_faultBatches = s_meter.CreateCounter<long>("hmm.device.fault_batches", "{batch}", "Fault batches serviced");
    private static readonly Counter<long> s_replays = s_meter.CreateCounter<long>("hmm.device.replays", "{replay}", "Fault replays issued");
    private static readonly Counter<long> s_cancels = s_meter.CreateCounter<long>("hmm.device.cancels", "{cancel}", "Faults cancelled");
    private static readonly Counter<long> s_pagesToDevice = s_meter.CreateCounter<long>("hmm.device.pages_migrated_to_device", "{page}", "Pages migrated into device memory");
    private static readonly Counter<long> s_pagesFromDevice = s_meter.CreateCounter<long>("hmm.device.pages_migrated_from_device", "{page}", "Pages migrated out of device memory");
    private static readonly Counter<long> s_bytesCopied = s_meter.CreateCounter<long>("hmm.device.bytes_copied", "By", "Bytes moved by the copy engine");
    private static readonly Counter<long> s_tlbInvalidations = s_meter.CreateCounter<long>("hmm.device.tlb_invalidations", "{invalidation}", "Device TLB invalidations");
    private static readonly Counter<long> s_p2pMaps = s_meter.CreateCounter<long>("hmm.device.p2p_maps", "{mapping}", "Peer-to-peer mappings established");

    private readonly KeyValuePair<string, object?> _tag;
    private long _faults, _faultBatches, _replays, _cancels, _pagesToDevice, _pagesFromDevice, _bytesCopied, _tlbInvalidations, _p2pMaps;

    /// <summary>Counters for the device named <paramref name="device"/> (the tag value), charging <paramref name="clock"/> (a new one if null).</summary>
    public DeviceMeters(string device, SimClock? clock = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(device);
        Device = device;
        Clock = clock ?? new SimClock();
        _tag = new("device", device);
    }

    /// <summary>The Meter every instance publishes to.</summary>
    public static Meter Meter => s_meter;

    /// <summary>The device name (the <c>device</c> tag).</summary>
    public string Device { get; }

    /// <summary>The device's simulated clock.</summary>
    public SimClock Clock { get; }

    /// <summary>Total faults.</summary>
    public long Faults => Interlocked.Read(ref _faults);
    /// <summary>Total fault batches.</summary>
    public long FaultBatches => Interlocked.Read(ref _faultBatches);
    /// <summary>Total replays.</summary>
    public long Replays => Interlocked.Read(ref _replays);
    /// <summary>Total cancels.</summary>
    public long Cancels => Interlocked.Read(ref _cancels);
    /// <summary>Total pages migrated to the device.</summary>
    public long PagesMigratedToDevice => Interlocked.Read(ref _pagesToDevice);
    /// <summary>Total pages migrated from the device.</summary>
    public long PagesMigratedFromDevice => Interlocked.Read(ref _pagesFromDevice);
    /// <summary>Total bytes copied.</summary>
    public long BytesCopied => Interlocked.Read(ref _bytesCopied);
    /// <summary>Total TLB invalidations.</summary>
    public long TlbInvalidations => Interlocked.Read(ref _tlbInvalidations);
    /// <summary>Total p2p maps.</summary>
    public long P2pMaps => Interlocked.Read(ref _p2pMaps);

    /// <summary>Counts faults.</summary>
    public void AddFaults(long n) => Add(ref _faults, s_faults, n);
    /// <summary>Counts fault batches.</summary>
    public void AddFaultBatches(long n) => Add(ref _faultBatches, s_faultBatches, n);
    /// <summary>Counts replays.</summary>
    public void AddReplays(long n) => Add(ref _replays, s_replays, n);
    /// <summary>Counts cancels.</summary>
    public void AddCancels(long n) => Add(ref _cancels, s_cancels, n);
    /// <summary>Counts pages migrated to the device.</summary>
    public void AddPagesMigratedToDevice(long n) => Add(ref _pagesToDevice, s_pagesToDevice, n);
    /// <summary>Counts pages migrated from the device.</summary>
    public void AddPagesMigratedFromDevice(long n) => Add(ref _pagesFromDevice, s_pagesFromDevice, n);
    /// <summary>Counts bytes copied.</summary>
    public void AddBytesCopied(long n) => Add(ref _bytesCopied, s_bytesCopied, n);
    /// <summary>Counts TLB invalidations.</summary>
    public void AddTlbInvalidations(long n) => Add(ref _tlbInvalidations, s_tlbInvalidations, n);
    /// <summary>Counts p2p maps.</summary>
    public void AddP2pMaps(long n) => Add(ref _p2pMaps, s_p2pMaps, n);

    private void Add(ref long total, Counter<long> counter, long n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        if (n == 0) return;
        Interlocked.Add(ref total, n);
        counter.Add(n, _tag);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Device}: {Faults} faults / {FaultBatches} batches, {BytesCopied} B copied, {P2pMaps} p2p maps @ {Clock}";
}
