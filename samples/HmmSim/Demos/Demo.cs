using Hmm.Samples.Nouveau;

namespace Hmm.Samples.HmmSim.Demos;

/// <summary>
/// One demo of drivers.md section F: a workload that makes one driver mechanism visible (first-touch
/// mirroring, bind, thrashing mitigation, ODP faults...). A demo builds its own simulated machine,
/// runs, checks every byte it reads against a reference, and reports the driver's counters, the
/// simulated time it took and — when a <see cref="TimelineRecorder"/> is recording — the timeline
/// series the report draws.
/// </summary>
public abstract class Demo
{
    /// <summary>The name <c>hmmsim run NAME</c> takes (lower-case, dash-separated).</summary>
    public abstract string Name { get; }

    /// <summary>One line for <c>hmmsim list</c>.</summary>
    public abstract string Description { get; }

    /// <summary>A short paragraph for the tour and the report: what happens and what to look at.</summary>
    public abstract string Explanation { get; }

    /// <summary>The drivers.md section the workload comes from (e.g. "F.1.1").</summary>
    public abstract string Section { get; }

    /// <summary>The buffer size, in 4 KiB pages, the tour uses (chosen so the whole tour fits in two minutes on two cores).</summary>
    public abstract int DefaultPages { get; }

    /// <summary>The fewest pages the workload makes sense with.</summary>
    public virtual int MinPages => 1;

    /// <summary>The most pages accepted: beyond this a run would not fit the simulated machine or a person's patience.</summary>
    public virtual int MaxPages => 1 << 16;

    /// <summary>Whether <c>--policy</c> applies (the GPU demos run under nouveau's rule or the UVM-style policy).</summary>
    public virtual bool HasPolicy => true;

    /// <summary>The policy when <c>--policy</c> is not given.</summary>
    public virtual GpuPolicyMode DefaultPolicy => GpuPolicyMode.Nouveau;

    /// <summary>The parameters of a run with nothing given on the command line.</summary>
    public DemoParameters Defaults => new(DefaultPages, Seed: 1, HasPolicy ? DefaultPolicy : null);

    /// <summary>Null when <paramref name="parameters"/> suit this demo, else one line naming the problem.</summary>
    public string? Check(DemoParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (parameters.Pages < MinPages || parameters.Pages > MaxPages)
            return $"--pages {parameters.Pages} is out of range for '{Name}' (allowed {MinPages}..{MaxPages})";
        if (parameters.Policy is not null && !HasPolicy)
            return $"--policy does not apply to '{Name}' (it has no GPU residency policy)";
        return CheckMore(parameters);
    }

    /// <summary>Demo-specific checks beyond the page range (e.g. a multiple of some unit); null when fine.</summary>
    protected virtual string? CheckMore(DemoParameters parameters) => null;

    /// <summary>Runs the demo once on a fresh simulated machine. Parameters have passed <see cref="Check"/>.</summary>
    public abstract DemoResult Run(DemoParameters parameters, TimelineRecorder recorder);
}

/// <summary>What a run is asked to do.</summary>
/// <param name="Pages">Buffer size in 4 KiB pages (each demo says what the buffer is).</param>
/// <param name="Seed">Seed of any pseudo-random walk and of the data pattern.</param>
/// <param name="Policy">The GPU residency policy; null for demos without one.</param>
public sealed record DemoParameters(int Pages, ulong Seed, GpuPolicyMode? Policy);

/// <summary>What a run found.</summary>
/// <param name="Counters">Driver and device counters, in display order (name → value).</param>
/// <param name="SimulatedTimeNs">Simulated time the workload took on the device clock.</param>
/// <param name="DataVerified">Every byte read (by the CPU or the device) matched the reference model.</param>
public sealed record DemoResult(IReadOnlyList<KeyValuePair<string, long>> Counters, long SimulatedTimeNs, bool DataVerified)
{
    /// <summary>The value of counter <paramref name="name"/> (throws when absent: a demo's counter set is fixed).</summary>
    public long this[string name]
    {
        get
        {
            foreach (var kv in Counters)
                if (kv.Key == name) return kv.Value;
            throw new KeyNotFoundException(name);
        }
    }
}
