using System.Diagnostics;
using System.Globalization;

namespace Hmm.Runtime.Scheduling;

/// <summary>
/// Systematic concurrency testing of the runtime (in the manner of Coyote, FoundationDB's and
/// TigerBeetle's simulators): runs a test body many times, each time under a different
/// controlled interleaving of its logical threads and a different set of injected faults,
/// all derived from a seed, and reports the first failing seed with a readable trace.
/// </summary>
/// <example>
/// <code>
/// ExploreReport report = Explorer.Run(new ExploreOptions { Schedules = 1000, Seed = 1 }, ctx =>
/// {
///     var machine = new Machine(...);
///     ctx.Spawn("cpu", () => process.Store(addr, 1));
///     ctx.Spawn("device", () => mirror.Read(addr, 1, buf, out _));
///     ctx.AtEnd(() => machine.CheckInvariants());
/// });
/// Assert.That(report.Failures, Is.Zero, report.ToString());
/// </code>
/// </example>
public static class Explorer
{
    private static int s_running;

    /// <summary>Explores <paramref name="options"/>.Schedules schedules of <paramref name="body"/>.</summary>
    /// <remarks>
    /// The body runs once per schedule on the calling thread: it builds the scenario, spawns
    /// logical threads and registers final oracles; the threads then run under the scheduler.
    /// Explorations are process-wide (the hooks are static): one runs at a time.
    /// </remarks>
    public static ExploreReport Run(ExploreOptions options, Action<ExploreContext> body)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(body);
        if (Interlocked.Exchange(ref s_running, 1) != 0)
        {
            throw new InvalidOperationException("an exploration is already running in this process");
        }

        try
        {
            return RunCore(options, body);
        }
        finally
        {
            Volatile.Write(ref s_running, 0);
        }
    }

    /// <summary>
    /// Replays the failing schedule <paramref name="failure"/> names under the same options
    /// (one schedule for random and PCT; the DFS prefix up to it for DFS).
    /// </summary>
    public static ExploreReport Replay(ExploreOptions options, ExploreFailure failure, Action<ExploreContext> body)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(failure);
        return Run(ReplayOptions(options, failure), body);
    }

    /// <summary>The options that replay <paramref name="failure"/>.</summary>
    public static ExploreOptions ReplayOptions(ExploreOptions options, ExploreFailure failure)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(failure);
        return failure.Strategy == ExploreStrategy.Dfs
            ? options with { Strategy = ExploreStrategy.Dfs, Seed = failure.Seed - (ulong)failure.Schedule, Schedules = failure.Schedule + 1, KeepLastTrace = true }
            : options with { Strategy = failure.Strategy, Seed = failure.Seed, Schedules = 1, KeepLastTrace = true };
    }

    private static ExploreReport RunCore(ExploreOptions options, Action<ExploreContext> body)
    {
        var clock = Stopwatch.StartNew();
        ScheduleStrategy strategy = ScheduleStrategy.Create(options);
        var trace = new ScheduleTrace();
        int schedules = 0, failures = 0;
        long steps = 0;
        ExploreFailure? first = null;
        string? lastTrace = null;
        for (int i = 0; i < options.Schedules; i++)
        {
            ulong seed = options.Seed + (ulong)i;
            if (!strategy.Begin(seed))
            {
                break;
            }

            trace.Clear();
            var run = new ScheduleRun(options, strategy, seed, i, trace);
            run.Execute(body);
            schedules++;
            steps += run.Steps;
            bool last = i == options.Schedules - 1;
            if (run.FailureKind is { } kind)
            {
                failures++;
                string text = trace.Render(options.Strategy, seed, run.Threads, kind, run.FailureMessage);
                if (first is null)
                {
                    string? path = WriteTrace(options, seed, text);
                    first = new ExploreFailure(seed, options.Strategy, i, kind, run.FailureMessage ?? "", text, path);
                }

                if (options.StopOnFirstFailure)
                {
                    last = true;
                }
            }

            if (last && options.KeepLastTrace)
            {
                lastTrace = trace.Render(options.Strategy, seed, run.Threads, run.FailureKind, run.FailureMessage);
            }

            if (run.FailureKind is not null && options.StopOnFirstFailure)
            {
                break;
            }
        }

        return new ExploreReport(schedules, failures, first, steps, clock.Elapsed, lastTrace);
    }

    private static string? WriteTrace(ExploreOptions options, ulong seed, string text)
    {
        if (options.TraceDirectory is null)
        {
            return null;
        }

        Directory.CreateDirectory(options.TraceDirectory);
        string path = Path.Combine(options.TraceDirectory,
            $"explore-{options.Strategy.ToString().ToLowerInvariant()}-{seed.ToString(CultureInfo.InvariantCulture)}.trace");
        File.WriteAllText(path, text);
        return path;
    }
}
