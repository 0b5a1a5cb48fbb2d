namespace Hmm.Runtime.Scheduling;

/// <summary>Picks which runnable logical thread runs next at a scheduling point.</summary>
internal abstract class ScheduleStrategy
{
    /// <summary>Prepares schedule number <paramref name="seed"/>; false when the strategy has nothing left (DFS exhausted).</summary>
    public abstract bool Begin(ulong seed);

    /// <summary>A thread was created (PCT gives it a priority).</summary>
    public virtual void OnSpawn(LogicalThread thread) { }

    /// <summary>
    /// Index into <paramref name="runnable"/> (never empty, in creation order) of the thread to run
    /// at step <paramref name="step"/>; <paramref name="current"/> is the thread that reached the point,
    /// <paramref name="yielding"/> when it reached it through a no-progress retry
    /// (<see cref="SchedulePointKind.Yield"/>) and should give way.
    /// </summary>
    public abstract int Pick(List<LogicalThread> runnable, LogicalThread? current, long step, bool yielding = false);

    /// <summary>The first runnable thread other than <paramref name="current"/>, or 0 when it is alone.</summary>
    protected static int FirstOther(List<LogicalThread> runnable, LogicalThread? current)
    {
        for (int i = 0; i < runnable.Count; i++)
        {
            if (runnable[i] != current)
            {
                return i;
            }
        }

        return 0;
    }

    /// <summary>The schedule ended.</summary>
    public virtual void End() { }

    public static ScheduleStrategy Create(ExploreOptions options) => options.Strategy switch
    {
        ExploreStrategy.Pct => new PctStrategy(options.PctDepth, options.PctHorizon),
        ExploreStrategy.Dfs => new DfsStrategy(options.DfsDepth),
        _ => new RandomWalkStrategy(),
    };
}

/// <summary>Random walk: every runnable thread is equally likely at every point.</summary>
internal sealed class RandomWalkStrategy : ScheduleStrategy
{
    private DeterministicRandom _random = new(0);

    public override bool Begin(ulong seed)
    {
        _random = new DeterministicRandom(seed);
        return true;
    }

    // A yield needs no special case: every other runnable thread already gets its fair chance.
    public override int Pick(List<LogicalThread> runnable, LogicalThread? current, long step, bool yielding = false) => _random.Next(runnable.Count);
}

/// <summary>
/// PCT (Burckhardt et al., ASPLOS 2010): threads get random distinct priorities; the highest
/// runnable one runs; at <c>d - 1</c> random steps the running thread drops below every other.
/// A bug of depth d is found with probability at least 1/(n k^(d-1)) per schedule. A thread that
/// yields (a retry without progress) also drops below every other thread, as in Coyote's PCT:
/// with strict priorities a spinning thread would never let the holder it waits for run.
/// </summary>
internal sealed class PctStrategy : ScheduleStrategy
{
    private readonly int _depth, _horizon;
    private readonly List<LogicalThread> _byPriority = new(); // highest first
    private readonly List<long> _changePoints = new();
    private DeterministicRandom _random = new(0);

    public PctStrategy(int depth, int horizon)
    {
        _depth = Math.Max(1, depth);
        _horizon = Math.Max(1, horizon);
    }

    public override bool Begin(ulong seed)
    {
        _random = new DeterministicRandom(seed);
        _byPriority.Clear();
        _changePoints.Clear();
        for (int i = 1; i < _depth; i++)
        {
            _changePoints.Add(1 + _random.Next(_horizon));
        }

        return true;
    }

    public override void OnSpawn(LogicalThread thread) => _byPriority.Insert(_random.Next(_byPriority.Count + 1), thread);

    public override int Pick(List<LogicalThread> runnable, LogicalThread? current, long step, bool yielding = false)
    {
        if (current is not null && (yielding || _changePoints.Contains(step)))
        {
            _byPriority.Remove(current);
            _byPriority.Add(current);
        }

        foreach (LogicalThread t in _byPriority)
        {
            int i = runnable.IndexOf(t);
            if (i >= 0)
            {
                return i;
            }
        }

        return 0;
    }
}

/// <summary>
/// Bounded exhaustive search: schedule i follows the choice path of schedule i - 1 up to its
/// last unexplored branch, takes the next choice there and the first choice afterwards.
/// Choices past <c>depth</c> points are not branched on.
/// </summary>
internal sealed class DfsStrategy : ScheduleStrategy
{
    private readonly int _depth;
    private readonly List<(int Choice, int Count)> _path = new();
    private int _position;
    private bool _started, _exhausted;

    public DfsStrategy(int depth) => _depth = depth;

    public override bool Begin(ulong seed)
    {
        if (_started && !Advance())
        {
            _exhausted = true;
        }

        _started = true;
        _position = 0;
        return !_exhausted;
    }

    public override int Pick(List<LogicalThread> runnable, LogicalThread? current, long step, bool yielding = false)
    {
        if (runnable.Count == 1)
        {
            return 0;
        }

        if (_position < _path.Count)
        {
            return Math.Min(_path[_position++].Choice, runnable.Count - 1);
        }

        if (_path.Count >= _depth)
        {
            // Past the branching depth the first thread runs; one that spins without progress
            // gives way so the tail of the schedule ends instead of hitting the step bound.
            return yielding ? FirstOther(runnable, current) : 0;
        }

        _path.Add((0, runnable.Count));
        _position++;
        return 0;
    }

    private bool Advance()
    {
        // The path may be longer than what the last schedule used if it ended earlier; cut it.
        if (_path.Count > _position)
        {
            _path.RemoveRange(_position, _path.Count - _position);
        }

        while (_path.Count > 0)
        {
            (int choice, int count) = _path[^1];
            if (choice + 1 < count)
            {
                _path[^1] = (choice + 1, count);
                return true;
            }

            _path.RemoveAt(_path.Count - 1);
        }

        return false;
    }
}
