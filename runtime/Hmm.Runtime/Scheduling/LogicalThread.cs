using System.Diagnostics;
using Hmm.Runtime.Locking;

namespace Hmm.Runtime.Scheduling;

/// <summary>State of a logical thread under the controlled scheduler.</summary>
internal enum LogicalThreadState : byte
{
    Runnable,
    Blocked,
    Done,
}

/// <summary>
/// One logical thread of an exploration (a CPU thread, a device thread, the notifier or
/// eviction path): a real thread that runs only while it holds the baton.
/// </summary>
internal sealed class LogicalThread
{
    public LogicalThread(ScheduleRun run, int id, string name, Action body)
    {
        Run = run;
        Id = id;
        Name = name;
        Body = body;
    }

    public ScheduleRun Run { get; }

    public int Id { get; }

    public string Name { get; }

    public Action Body { get; }

    public SemaphoreSlim Baton { get; } = new(0, 1);

    public bool Started { get; set; }

    public ManualResetEventSlim Exited { get; } = new(false);

    public LogicalThreadState State { get; set; }

    public object? BlockedOn { get; set; }

    /// <summary>Held locks, described when the thread blocked (read by the deadlock report).</summary>
    public string HeldAtBlock { get; set; } = "";

    /// <summary>Where the thread blocked: the innermost frames outside the locking code.</summary>
    public string WaitSite { get; set; } = "";

    /// <summary>Snapshot of the calling thread's held locks, innermost last.</summary>
    public static string DescribeHeldLocks()
    {
        HeldLocks? held = HeldLocks.CurrentOrNull;
        if (held is null || held.Count == 0)
        {
            return "none";
        }

        var parts = new string[held.Count];
        for (int i = 0; i < held.Count; i++)
        {
            parts[i] = held[i].Describe();
        }

        return string.Join(", ", parts);
    }

    /// <summary>The first frames of the caller outside Locking and Scheduling (the wait site).</summary>
    public static string DescribeWaitSite()
    {
        var trace = new StackTrace(2, false);
        var sites = new List<string>(3);
        foreach (StackFrame frame in trace.GetFrames())
        {
            DiagnosticMethodInfo? method = DiagnosticMethodInfo.Create(frame);
            string? type = method?.DeclaringTypeName;
            if (method is null || type is null || type.StartsWith("Hmm.Runtime.Locking.", StringComparison.Ordinal)
                || type.StartsWith("Hmm.Runtime.Scheduling.", StringComparison.Ordinal))
            {
                continue;
            }

            sites.Add(type[(type.LastIndexOf('.') + 1)..] + "." + method.Name);
            if (sites.Count == 3)
            {
                break;
            }
        }

        return string.Join(" <- ", sites);
    }

    public override string ToString() => Name;
}
