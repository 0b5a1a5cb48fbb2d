using System.Text;

namespace Hmm.Runtime.Scheduling;

/// <summary>Unwinds a logical thread when its schedule was stopped (failure elsewhere, deadlock, step bound).</summary>
internal sealed class ScheduleAbortedException : Exception
{
    public ScheduleAbortedException() : base("the schedule was stopped") { }
}

/// <summary>
/// One schedule of an exploration: the controlled scheduler and fault injector. Logical
/// threads are real threads, but exactly one holds the baton at a time; at every scheduling
/// point the holder asks the strategy who runs next and hands the baton over directly.
/// Everything the run decides (who runs, which fault fires, which data is chosen) comes
/// from the strategy and one seeded stream, so a seed replays the same schedule.
/// </summary>
internal sealed class ScheduleRun : IScheduleHook, IFaultInjectionHook
{
    [ThreadStatic] private static LogicalThread? t_current;

    private readonly ExploreOptions _options;
    private readonly ScheduleStrategy _strategy;
    private readonly ScheduleTrace _trace;
    private readonly List<LogicalThread> _threads = new();
    private readonly List<LogicalThread> _runnable = new();
    private readonly List<Action> _atEnd = new();
    private readonly List<Action> _cleanup = new();
    private readonly SemaphoreSlim _done = new(0, 1);
    private readonly bool[] _enabled = new bool[Enum.GetValues<FaultSite>().Length];
    private readonly DeterministicRandom _data;
    private long _step;
    private int _doneSignalled;
    private volatile bool _aborted;
    private bool _started;

    public ScheduleRun(ExploreOptions options, ScheduleStrategy strategy, ulong seed, int index, ScheduleTrace trace)
    {
        _options = options;
        _strategy = strategy;
        _trace = trace;
        Seed = seed;
        Index = index;
        _data = new DeterministicRandom(seed ^ 0xD1B54A32D192ED03UL);
        foreach (FaultSite site in options.Inject)
        {
            _enabled[(int)site] = true;
        }
    }

    public ulong Seed { get; }

    public int Index { get; }

    public long Steps => _step;

    public ExploreFailureKind? FailureKind { get; private set; }

    public string? FailureMessage { get; private set; }

    public IReadOnlyList<LogicalThread> Threads => _threads;

    /// <summary>Runs the body's threads to completion (or failure), then the final oracles.</summary>
    public void Execute(Action<ExploreContext> body)
    {
        try
        {
            body(new ExploreContext(this));
        }
        catch (Exception e)
        {
            Fail(ExploreFailureKind.Exception, "setup: " + Describe(e));
            _cleanup.ForEach(static c => c());
            return;
        }

        SchedulePoints.Hook = this;
        FaultInjection.Hook = this;
        try
        {
            _started = true;
            foreach (LogicalThread t in _threads.ToArray())
            {
                StartReal(t);
            }

            if (_threads.Count > 0)
            {
                Refresh();
                _runnable[_strategy.Pick(_runnable, null, 0)].Baton.Release();
                _done.Wait();
            }

            foreach (LogicalThread t in _threads.ToArray())
            {
                if (t.Started && !t.Exited.Wait(TimeSpan.FromSeconds(30)))
                {
                    Fail(ExploreFailureKind.Deadlock, $"logical thread '{t.Name}' did not unwind after the schedule stopped");
                }
            }
        }
        finally
        {
            SchedulePoints.Hook = null;
            FaultInjection.Hook = null;
            _strategy.End();
        }

        try
        {
            RunOracles();
        }
        finally
        {
            foreach (Action cleanup in _cleanup)
            {
                cleanup();
            }
        }
    }

    private void RunOracles()
    {
        if (FailureKind is null)
        {
            foreach (Action oracle in _atEnd)
            {
                try
                {
                    oracle();
                }
                catch (Exception e)
                {
                    Fail(ExploreFailureKind.Oracle, Describe(e));
                    break;
                }
            }
        }
    }

    public void Spawn(string name, Action body)
    {
        var t = new LogicalThread(this, _threads.Count + 1, name, body);
        _threads.Add(t);
        _strategy.OnSpawn(t);
        _trace.Add(_step, t_current?.Id ?? 0, ScheduleTrace.Spawn, t, 0);
        if (_started)
        {
            StartReal(t);
        }
    }

    public int Choose(int count)
    {
        int choice = _data.Next(count);
        _trace.AddText(_step, t_current?.Id ?? 0, $"choose {choice} of {count}");
        return choice;
    }

    public bool InjectsScenarioFault(FaultSite site)
    {
        if (!_enabled[(int)site] || _data.Next(2) != 0)
        {
            return false;
        }

        _trace.AddText(_step, t_current?.Id ?? 0, "inject " + site);
        return true;
    }

    public void Log(string text) => _trace.AddText(_step, t_current?.Id ?? 0, text);

    public void AtEnd(Action oracle) => _atEnd.Add(oracle);

    public void Cleanup(Action cleanup) => _cleanup.Add(cleanup);

    /// <inheritdoc/>
    public void Reach(SchedulePointKind kind, object? subject, ulong detail)
    {
        LogicalThread? t = t_current;
        if (t is null || t.Run != this)
        {
            return;
        }

        Step(t, kind, subject, detail);
    }

    /// <inheritdoc/>
    public void Block(object subject)
    {
        LogicalThread? t = t_current;
        if (t is null || t.Run != this)
        {
            // Not ours (a thread outside the exploration): let the holder run.
            Thread.Yield();
            return;
        }

        ThrowIfAborted();
        t.State = LogicalThreadState.Blocked;
        t.BlockedOn = subject;
        t.HeldAtBlock = LogicalThread.DescribeHeldLocks();
        t.WaitSite = LogicalThread.DescribeWaitSite();
        _trace.Add(++_step, t.Id, (int)SchedulePointKind.Block, subject, 0);
        Refresh();
        if (_runnable.Count == 0)
        {
            Fail(ExploreFailureKind.Deadlock, DescribeDeadlock());
            Abort();
            throw new ScheduleAbortedException();
        }

        SwitchTo(t, _runnable[_strategy.Pick(_runnable, t, _step)]);
    }

    /// <inheritdoc/>
    public void Released(object subject)
    {
        LogicalThread? t = t_current;
        if (t is null || t.Run != this)
        {
            return;
        }

        foreach (LogicalThread other in _threads)
        {
            if (other.State == LogicalThreadState.Blocked && ReferenceEquals(other.BlockedOn, subject))
            {
                other.State = LogicalThreadState.Runnable;
                other.BlockedOn = null;
            }
        }

        Step(t, SchedulePointKind.Release, subject, 0);
    }

    /// <inheritdoc/>
    public bool Fails(FaultSite site)
    {
        LogicalThread? t = t_current;
        if (t is null || t.Run != this || !_enabled[(int)site] || _data.NextDouble() >= _options.InjectProbability)
        {
            return false;
        }

        _trace.AddText(_step, t.Id, "inject " + site);
        return true;
    }

    private void Step(LogicalThread t, SchedulePointKind kind, object? subject, ulong detail)
    {
        ThrowIfAborted();
        _trace.Add(++_step, t.Id, (int)kind, subject, detail);
        if (_step > _options.MaxSteps)
        {
            Fail(ExploreFailureKind.StepBound, $"step bound {_options.MaxSteps} exceeded (livelock?) in {t.Name}");
            Abort();
            throw new ScheduleAbortedException();
        }

        Refresh();
        LogicalThread next = _runnable[_strategy.Pick(_runnable, t, _step, kind == SchedulePointKind.Yield)];
        if (next != t)
        {
            SwitchTo(t, next);
        }
    }

    private void SwitchTo(LogicalThread from, LogicalThread to)
    {
        to.Baton.Release();
        from.Baton.Wait();
        ThrowIfAborted();
    }

    private void ThrowIfAborted()
    {
        if (_aborted)
        {
            throw new ScheduleAbortedException();
        }
    }

    private void Refresh()
    {
        _runnable.Clear();
        foreach (LogicalThread t in _threads)
        {
            if (t.State == LogicalThreadState.Runnable)
            {
                _runnable.Add(t);
            }
        }
    }

    private void StartReal(LogicalThread t)
    {
        t.Started = true;
        ExplorationWorkers.Run(() => ThreadMain(t));
    }

    private void ThreadMain(LogicalThread t)
    {
        t_current = t;
        try
        {
            t.Baton.Wait();
            if (_aborted)
            {
                return;
            }

            t.Body();
            t.State = LogicalThreadState.Done;
            _trace.AddText(_step, t.Id, "exit");
            HandOff();
        }
        catch (ScheduleAbortedException)
        {
            t.State = LogicalThreadState.Done;
        }
        catch (Exception e)
        {
            t.State = LogicalThreadState.Done;
            Fail(ExploreFailureKind.Exception, t.Name + ": " + Describe(e));
            Abort();
        }
        finally
        {
            t_current = null;
            t.Exited.Set();
        }
    }

    /// <summary>The current thread finished: run someone else, or end the schedule.</summary>
    private void HandOff()
    {
        if (_aborted)
        {
            return;
        }

        Refresh();
        if (_runnable.Count > 0)
        {
            _runnable[_strategy.Pick(_runnable, null, _step)].Baton.Release();
            return;
        }

        foreach (LogicalThread t in _threads)
        {
            if (t.State == LogicalThreadState.Blocked)
            {
                Fail(ExploreFailureKind.Deadlock, DescribeDeadlock());
                Abort();
                return;
            }
        }

        SignalDone();
    }

    private void Abort()
    {
        _aborted = true;
        LogicalThread? me = t_current;
        foreach (LogicalThread t in _threads)
        {
            if (t != me && t.State != LogicalThreadState.Done)
            {
                t.Baton.Release();
            }
        }

        SignalDone();
    }

    private void SignalDone()
    {
        if (Interlocked.Exchange(ref _doneSignalled, 1) == 0)
        {
            _done.Release();
        }
    }

    private void Fail(ExploreFailureKind kind, string message)
    {
        if (FailureKind is null)
        {
            FailureKind = kind;
            FailureMessage = message;
        }
    }

    private string DescribeDeadlock()
    {
        var sb = new StringBuilder();
        int live = 0;
        foreach (LogicalThread t in _threads)
        {
            live += t.State == LogicalThreadState.Blocked ? 1 : 0;
        }

        sb.Append("deadlock: all ").Append(live).Append(" live logical threads are blocked");
        foreach (LogicalThread t in _threads)
        {
            if (t.State == LogicalThreadState.Blocked)
            {
                sb.AppendLine().Append("  ").Append(t.Name).Append(": waits for ").Append(ScheduleTrace.Describe(t.BlockedOn))
                  .Append(" at ").Append(t.WaitSite).Append("; holds ").Append(t.HeldAtBlock);
            }
        }

        return sb.ToString();
    }

    private static string Describe(Exception e)
        => e is ExplorationCheckException ? "check failed: " + e.Message : e.GetType().Name + ": " + e.Message;
}
