namespace Hmm.Runtime.Telemetry;

/// <summary>
/// Simulated time in nanoseconds (ARCHITECTURE §7): the clock of the simulated system, not of
/// the simulator. One clock per simulated device (each device's engines charge their own
/// timeline from a <see cref="CostModel"/>); a machine-wide clock, if wanted, is just another
/// instance the CPU-side code charges. Thread-safe: <see cref="Advance"/> is an atomic add, and
/// <see cref="AdvanceTo"/> only moves forward.
/// </summary>
public sealed class SimClock
{
    private long _now;

    /// <summary>A clock at <paramref name="startNs"/>.</summary>
    public SimClock(long startNs = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(startNs);
        _now = startNs;
    }

    /// <summary>Current simulated time (ns).</summary>
    public long Now => Interlocked.Read(ref _now);

    /// <summary>Charges <paramref name="ns"/> (≥ 0) and returns the new time.</summary>
    public long Advance(long ns)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ns);
        return Interlocked.Add(ref _now, ns);
    }

    /// <summary>Moves the clock to <paramref name="ns"/> if that is later (an event completing at a known time); returns the resulting time.</summary>
    public long AdvanceTo(long ns)
    {
        long cur = Interlocked.Read(ref _now);
        while (ns > cur)
        {
            long seen = Interlocked.CompareExchange(ref _now, ns, cur);
            if (seen == cur) return ns;
            cur = seen;
        }
        return cur;
    }

    /// <summary>Current time as a <see cref="TimeSpan"/> (100 ns ticks).</summary>
    public TimeSpan Elapsed => TimeSpan.FromTicks(Now / 100);

    /// <inheritdoc/>
    public override string ToString() => $"{Now / 1000.0:F3} µs (simulated)";
}
