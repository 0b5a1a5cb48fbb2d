using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Hmm.Runtime.Scheduling;

/// <summary>
/// The interleaving of one schedule: which logical thread ran at each step, at which point,
/// on which lock or object, and the injected faults and scenario events. Entries hold the
/// subject and are rendered only when the trace is read, so recording costs no formatting.
/// </summary>
internal sealed partial class ScheduleTrace
{
    /// <summary>Pseudo point kind of a spawn entry.</summary>
    public const int Spawn = 100;

    private const int Text = 101;

    private readonly List<Entry> _entries = new();

    public int Count => _entries.Count;

    public void Clear() => _entries.Clear();

    public void Add(long step, int thread, int kind, object? subject, ulong detail) => _entries.Add(new Entry(step, thread, kind, subject, detail, null));

    public void AddText(long step, int thread, string text) => _entries.Add(new Entry(step, thread, Text, null, 0, text));

    /// <summary>Renders the trace; thread ids in messages are masked so replays compare byte for byte.</summary>
    public string Render(ExploreStrategy strategy, ulong seed, IReadOnlyList<LogicalThread> threads, ExploreFailureKind? kind, string? failure)
    {
        var sb = new StringBuilder();
        sb.Append("# hmm explore trace: strategy ").Append(strategy.ToString().ToLowerInvariant())
          .Append(", seed ").Append(seed.ToString(CultureInfo.InvariantCulture)).AppendLine();
        sb.Append("# threads:");
        foreach (LogicalThread t in threads)
        {
            sb.Append(' ').Append(t.Id.ToString(CultureInfo.InvariantCulture)).Append('=').Append(t.Name);
        }

        sb.AppendLine();
        foreach (Entry e in _entries)
        {
            sb.Append(e.Step.ToString(CultureInfo.InvariantCulture).PadLeft(7)).Append(' ')
              .Append((e.Thread == 0 ? "(setup)" : NameOf(threads, e.Thread)).PadRight(14)).Append(' ');
            switch (e.Kind)
            {
                case Text:
                    sb.Append(e.Text);
                    break;
                case Spawn:
                    sb.Append("spawn ").Append(e.Subject);
                    break;
                default:
                    sb.Append(KindName((SchedulePointKind)e.Kind).PadRight(8)).Append(' ').Append(Describe(e.Subject));
                    if (e.Detail != 0)
                    {
                        sb.Append(" 0x").Append(e.Detail.ToString("x", CultureInfo.InvariantCulture));
                    }

                    break;
            }

            sb.AppendLine();
        }

        sb.Append("# result: ").Append(kind is null ? "pass" : kind.ToString());
        if (failure is not null)
        {
            sb.AppendLine().Append("# ").Append(ThreadIds().Replace(failure.Replace("\n", "\n# ", StringComparison.Ordinal), "thread #n"));
        }

        return sb.AppendLine().ToString();
    }

    public static string Describe(object? subject) => subject switch
    {
        null => "",
        string s => s,
        _ => subject.ToString() ?? subject.GetType().Name,
    };

    private static string NameOf(IReadOnlyList<LogicalThread> threads, int id) => id - 1 < threads.Count ? threads[id - 1].Name : "#" + id;

    private static string KindName(SchedulePointKind kind) => kind switch
    {
        SchedulePointKind.Acquire => "acquire",
        SchedulePointKind.Release => "release",
        SchedulePointKind.Block => "block",
        SchedulePointKind.CpuAccess => "cpu",
        SchedulePointKind.DeviceStep => "device",
        SchedulePointKind.Notifier => "notifier",
        SchedulePointKind.Yield => "yield",
        _ => "sleep",
    };

    [GeneratedRegex(@"thread #\d+")]
    private static partial Regex ThreadIds();

    private readonly record struct Entry(long Step, int Thread, int Kind, object? Subject, ulong Detail, string? Text);
}
