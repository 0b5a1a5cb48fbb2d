using System.Globalization;
using Hmm.Runtime.Scheduling;
using Hmm.Samples.TestHmm.Exploration;

namespace Hmm.Samples.HmmSim;

/// <summary>
/// <c>hmmsim explore NAME [--schedules N] [--seed S] [--strategy random|pct|dfs] [--inject LIST|all|none] [--trace DIR]</c>
/// and <c>hmmsim explore --list</c>: runs a race scenario under the controlled scheduler.
/// </summary>
public static class ExploreCommand
{
    /// <summary>Runs the verb with the arguments after <c>explore</c>; returns the exit code (1 when a schedule failed).</summary>
    public static int Run(ReadOnlySpan<string> args, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (args.Length == 0)
        {
            output.WriteLine("usage: hmmsim explore NAME [--schedules N] [--seed S] [--strategy random|pct|dfs] [--inject LIST|all|none] [--trace DIR] | --list");
            return 2;
        }

        if (args[0] == "--list")
        {
            foreach (RaceScenario s in DmirrorRaces.All) output.WriteLine(s.Name);
            return 0;
        }

        RaceScenario? scenario = DmirrorRaces.Find(args[0]);
        if (scenario is null)
        {
            output.WriteLine($"hmmsim explore: unknown scenario '{args[0]}' (try 'hmmsim explore --list')");
            return 2;
        }

        var options = new ExploreOptions { Inject = ExploreOptions.AllFaults, TraceDirectory = "." };
        for (int i = 1; i < args.Length; i++)
        {
            string value = i + 1 < args.Length ? args[i + 1] : "";
            switch (args[i])
            {
                case "--schedules" when int.TryParse(value, CultureInfo.InvariantCulture, out int n) && n > 0:
                    options = options with { Schedules = n };
                    break;
                case "--seed" when ulong.TryParse(value, CultureInfo.InvariantCulture, out ulong seed):
                    options = options with { Seed = seed };
                    break;
                case "--strategy" when Enum.TryParse(value, ignoreCase: true, out ExploreStrategy strategy):
                    options = options with { Strategy = strategy };
                    break;
                case "--inject" when TryParseFaults(value, out IReadOnlyCollection<FaultSite> faults):
                    options = options with { Inject = faults };
                    break;
                case "--trace":
                    options = options with { TraceDirectory = value };
                    break;
                default:
                    output.WriteLine($"hmmsim explore: bad option '{args[i]}' {value}");
                    return 2;
            }

            i++;
        }

        ExploreReport report = Explorer.Run(options, scenario.Body);
        if (report.FirstFailure is { } failure)
        {
            output.WriteLine(failure.ToString());
            if (failure.TracePath is not null) output.WriteLine("trace: " + failure.TracePath);
        }

        output.WriteLine(report.Summary);
        return report.Failures == 0 ? 0 : 1;
    }

    private static bool TryParseFaults(string value, out IReadOnlyCollection<FaultSite> faults)
    {
        faults = Array.Empty<FaultSite>();
        if (value is "none") return true;
        if (value is "all") { faults = ExploreOptions.AllFaults; return true; }
        var list = new List<FaultSite>();
        foreach (string name in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Enum.TryParse(name, ignoreCase: true, out FaultSite site)) return false;
            list.Add(site);
        }

        faults = list;
        return true;
    }
}
