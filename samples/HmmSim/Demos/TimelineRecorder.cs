namespace Hmm.Samples.HmmSim.Demos;

/// <summary>
/// The counters the report charts, at one simulated instant (cumulative since the demo began).
/// </summary>
/// <param name="TimeNs">Simulated time since the demo began (device clock).</param>
/// <param name="Faults">Device faults fetched so far.</param>
/// <param name="MigratedToDevice">Pages migrated system → device memory.</param>
/// <param name="MigratedToSystem">Pages migrated device → system memory.</param>
/// <param name="ThrashingEvents">Thrashing events (C.3) so far.</param>
/// <param name="P2pBytes">Bytes a NIC moved peer-to-peer into device memory (F.4).</param>
/// <param name="FallbackBytes">Bytes a NIC moved through system memory because p2p was not possible.</param>
public readonly record struct TimelinePoint(long TimeNs, long Faults, long MigratedToDevice, long MigratedToSystem, long ThrashingEvents, long P2pBytes, long FallbackBytes);

/// <summary>Where the pages of one 2 MiB block live at one instant.</summary>
/// <param name="Cpu">Pages in system memory that only the CPU maps.</param>
/// <param name="Vram">Pages in the GPU's device memory.</param>
/// <param name="Remote">Pages in system memory that a device maps and reaches over PCIe (remote access).</param>
public readonly record struct BlockResidency(int Cpu, int Vram, int Remote);

/// <summary>The residency of every tracked 2 MiB block at one simulated instant.</summary>
/// <param name="TimeNs">Simulated time since the demo began.</param>
/// <param name="Blocks">One entry per tracked block, in address order.</param>
public sealed record ResidencyFrame(long TimeNs, BlockResidency[] Blocks);

/// <summary>
/// Collects the report's timeline while a demo runs: counter points and residency frames sampled
/// at simulated-time instants the demo chooses (after every fault-service pass, after each
/// phase). <see cref="Off"/> records nothing, and demos test <see cref="Enabled"/> before
/// computing a sample, so runs without a report pay nothing on their paths.
/// </summary>
public sealed class TimelineRecorder
{
    private readonly List<TimelinePoint> _points = [];
    private readonly List<ResidencyFrame> _frames = [];

    /// <summary>A recorder that records (for <c>hmmsim report</c>).</summary>
    public TimelineRecorder() => Enabled = true;

    private TimelineRecorder(bool enabled) => Enabled = enabled;

    /// <summary>The recorder of runs without a report: records nothing.</summary>
    public static TimelineRecorder Off { get; } = new(false);

    /// <summary>Whether samples are kept; demos skip computing them otherwise.</summary>
    public bool Enabled { get; }

    /// <summary>Most residency frames kept: a long run keeps every other frame once this is reached, so the chart stays readable.</summary>
    public const int MaxFrames = 240;

    /// <summary>Counter points, in time order.</summary>
    public IReadOnlyList<TimelinePoint> Points => _points;

    /// <summary>Residency frames, in time order.</summary>
    public IReadOnlyList<ResidencyFrame> Frames => _frames;

    /// <summary>Adds a counter point (ignored when off).</summary>
    public void Add(TimelinePoint point)
    {
        if (Enabled) _points.Add(point);
    }

    /// <summary>Adds a residency frame (ignored when off); past <see cref="MaxFrames"/> the older half is thinned.</summary>
    public void Add(ResidencyFrame frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        if (!Enabled) return;
        if (_frames.Count >= MaxFrames)
        {
            for (int i = _frames.Count - 1; i > 0; i -= 2) _frames.RemoveAt(i - 1);
        }
        _frames.Add(frame);
    }
}
