namespace Hmm.Runtime.Scheduling;

/// <summary>
/// What a test body sees in one schedule of an exploration: spawn logical threads, draw
/// seeded data choices, decide scenario-level faults, register final checks (oracles).
/// </summary>
public sealed class ExploreContext
{
    private readonly ScheduleRun _run;

    internal ExploreContext(ScheduleRun run) => _run = run;

    /// <summary>The schedule's seed (print it to replay).</summary>
    public ulong Seed => _run.Seed;

    /// <summary>Index of the schedule in the run.</summary>
    public int Schedule => _run.Index;

    /// <summary>Creates a logical thread named <paramref name="name"/> running <paramref name="body"/> under the scheduler.</summary>
    public void Spawn(string name, Action body)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(body);
        _run.Spawn(name, body);
    }

    /// <summary>A seeded choice in [0, <paramref name="count"/>), recorded in the trace.</summary>
    public int Choose(int count) => _run.Choose(count);

    /// <summary>
    /// Whether this schedule exercises scenario-level fault <paramref name="site"/> (e.g. runs an
    /// OOM reaper or removes device memory): only when the site is enabled, then one seeded coin.
    /// </summary>
    public bool Injects(FaultSite site) => _run.InjectsScenarioFault(site);

    /// <summary>Adds a line to the trace.</summary>
    public void Log(string text) => _run.Log(text);

    /// <summary>Runs <paramref name="oracle"/> after every thread finished (outside the scheduler); a throw fails the schedule.</summary>
    public void AtEnd(Action oracle)
    {
        ArgumentNullException.ThrowIfNull(oracle);
        _run.AtEnd(oracle);
    }

    /// <summary>Runs <paramref name="cleanup"/> when the schedule ends, failed or not (dispose the machine here).</summary>
    public void Cleanup(Action cleanup)
    {
        ArgumentNullException.ThrowIfNull(cleanup);
        _run.Cleanup(cleanup);
    }

    /// <summary>Fails the schedule with <paramref name="message"/> unless <paramref name="condition"/> holds.</summary>
    public static void Check(bool condition, string message)
    {
        if (!condition)
        {
            throw new ExplorationCheckException(message);
        }
    }
}

/// <summary>An oracle of a scenario failed (e.g. a read did not return the last write).</summary>
public sealed class ExplorationCheckException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ExplorationCheckException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public ExplorationCheckException() { }

    /// <summary>Creates the exception.</summary>
    public ExplorationCheckException(string message, Exception inner) : base(message, inner) { }
}
