namespace Hmm.Runtime.Scheduling;

/// <summary>How the controlled scheduler picks the next logical thread.</summary>
public enum ExploreStrategy : byte
{
    /// <summary>Uniform random choice among runnable threads at every point (random walk).</summary>
    Random,
    /// <summary>Probabilistic concurrency testing: random priorities with <c>d - 1</c> priority change points.</summary>
    Pct,
    /// <summary>Bounded exhaustive depth-first search over scheduling choices (small cases).</summary>
    Dfs,
}

/// <summary>What an exploration runs: how many schedules, from which seed, with which faults.</summary>
public sealed record ExploreOptions
{
    /// <summary>Schedules to run (DFS stops earlier when the space is exhausted).</summary>
    public int Schedules { get; init; } = 1000;

    /// <summary>Seed of the first schedule; schedule <c>i</c> uses <c>Seed + i</c> (random, PCT) or is DFS path <c>Seed + i</c>.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>The strategy.</summary>
    public ExploreStrategy Strategy { get; init; } = ExploreStrategy.Random;

    /// <summary>PCT bug depth <c>d</c>: the number of priority change points is <c>d - 1</c>.</summary>
    public int PctDepth { get; init; } = 3;

    /// <summary>PCT: the step range the change points are drawn from (an estimate of a schedule's length).</summary>
    public int PctHorizon { get; init; } = 300;

    /// <summary>DFS: choices deeper than this are not branched on (the bound of the bounded search).</summary>
    public int DfsDepth { get; init; } = 64;

    /// <summary>Steps after which a schedule is reported as a livelock.</summary>
    public int MaxSteps { get; init; } = 20_000;

    /// <summary>Fault sites that may fail; empty means no injection.</summary>
    public IReadOnlyCollection<FaultSite> Inject { get; init; } = Array.Empty<FaultSite>();

    /// <summary>Probability that one occurrence of an enabled site fails.</summary>
    public double InjectProbability { get; init; } = 0.05;

    /// <summary>Where failing schedules' traces are written (null: not written to disk).</summary>
    public string? TraceDirectory { get; init; }

    /// <summary>Stop at the first failing schedule (the default) or count every failure.</summary>
    public bool StopOnFirstFailure { get; init; } = true;

    /// <summary>Keep the rendered trace of the last schedule in the report (for replay and determinism checks).</summary>
    public bool KeepLastTrace { get; init; }

    /// <summary>Every fault site.</summary>
    public static IReadOnlyCollection<FaultSite> AllFaults { get; } = Enum.GetValues<FaultSite>();
}

/// <summary>Why a schedule failed.</summary>
public enum ExploreFailureKind : byte
{
    /// <summary>A logical thread threw (a KernelBugException rule check, the lock validator, an assertion).</summary>
    Exception,
    /// <summary>Every live logical thread was blocked.</summary>
    Deadlock,
    /// <summary>The step bound was exceeded (livelock).</summary>
    StepBound,
    /// <summary>A final oracle failed (memory contents, invariants, leaked pages).</summary>
    Oracle,
}

/// <summary>A failing schedule, with what replays it.</summary>
/// <param name="Seed">The schedule's seed: <c>--seed Seed --schedules 1</c> replays it.</param>
/// <param name="Strategy">The strategy that produced it.</param>
/// <param name="Schedule">Index of the schedule in the run.</param>
/// <param name="Kind">What failed.</param>
/// <param name="Message">The failure, with each thread's held locks and wait site for a deadlock.</param>
/// <param name="Trace">The rendered interleaving.</param>
/// <param name="TracePath">Where the trace was written, or null.</param>
public sealed record ExploreFailure(ulong Seed, ExploreStrategy Strategy, int Schedule, ExploreFailureKind Kind, string Message, string Trace, string? TracePath)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Kind} with --strategy {Strategy.ToString().ToLowerInvariant()} --seed {Seed}: {Message}";
}

/// <summary>What an exploration found.</summary>
/// <param name="Schedules">Schedules run.</param>
/// <param name="Failures">Failing schedules.</param>
/// <param name="FirstFailure">The first failing schedule, or null.</param>
/// <param name="Steps">Scheduling steps over all schedules.</param>
/// <param name="Elapsed">Wall-clock time of the run.</param>
/// <param name="LastTrace">The last schedule's trace when <see cref="ExploreOptions.KeepLastTrace"/> is set.</param>
public sealed record ExploreReport(int Schedules, int Failures, ExploreFailure? FirstFailure, long Steps, TimeSpan Elapsed, string? LastTrace)
{
    /// <summary>Schedules per second.</summary>
    public double SchedulesPerSecond => Elapsed.TotalSeconds > 0 ? Schedules / Elapsed.TotalSeconds : 0;

    /// <summary>The one-line summary: <c>N schedules, F failures</c>, plus the first failing seed.</summary>
    public string Summary => FirstFailure is null
        ? $"{Schedules} schedules, {Failures} failures"
        : $"{Schedules} schedules, {Failures} failures (first: --strategy {FirstFailure.Strategy.ToString().ToLowerInvariant()} --seed {FirstFailure.Seed})";

    /// <inheritdoc/>
    public override string ToString() => FirstFailure is null ? Summary : Summary + Environment.NewLine + FirstFailure.Message;
}
