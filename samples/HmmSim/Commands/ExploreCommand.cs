using System.CommandLine;
using Hmm.Runtime.Scheduling;
using Hmm.Samples.TestHmm.Exploration;

namespace Hmm.Samples.HmmSim.Commands;

/// <summary>
/// <c>hmmsim explore NAME [--schedules N] [--seed S] [--strategy random|pct|dfs] [--inject LIST|all|none] [--trace DIR]</c>
/// and <c>hmmsim explore --list</c>: runs a race scenario of the dmirror sample under the
/// controlled scheduler, with injected faults, and prints a seed that replays any failure.
/// </summary>
public static class ExploreCommand
{
    /// <summary>The <c>explore</c> verb.</summary>
    public static Command Build(CommandIO io)
    {
        ArgumentNullException.ThrowIfNull(io);
        var name = new Argument<string?>("NAME") { Description = "The race scenario (see 'hmmsim explore --list').", Arity = ArgumentArity.ZeroOrOne };
        name.Validators.Add(r =>
        {
            string? n = r.GetValueOrDefault<string?>();
            if (n is not null && DmirrorRaces.Find(n) is null) r.AddError($"explore: unknown scenario '{n}' (try 'hmmsim explore --list')");
        });
        name.CompletionSources.Add(_ => DmirrorRaces.All.Select(s => new System.CommandLine.Completions.CompletionItem(s.Name, detail: s.Description)));
        var list = new Option<bool>("--list") { Description = "Print the scenario names." };
        var schedules = new Option<int>("--schedules") { Description = "Schedules to explore.", DefaultValueFactory = _ => new ExploreOptions().Schedules };
        schedules.Validators.Add(r =>
        {
            int n = r.GetValueOrDefault<int>();
            if (n < 1) r.AddError($"explore: --schedules must be at least 1, not {n}");
        });
        var seed = new Option<ulong>("--seed") { Description = "Seed of the exploration.", DefaultValueFactory = _ => new ExploreOptions().Seed };
        var strategy = new Option<string>("--strategy") { Description = "random, pct or dfs.", DefaultValueFactory = _ => "random" };
        strategy.Validators.Add(r =>
        {
            string s = r.GetValueOrDefault<string>() ?? "";
            if (!Enum.TryParse<ExploreStrategy>(s, ignoreCase: true, out _)) r.AddError($"explore: unknown strategy '{s}' (expected random, pct or dfs)");
        });
        strategy.CompletionSources.Add("random", "pct", "dfs");
        var inject = new Option<string>("--inject") { Description = "Fault sites to inject: a comma-separated list, all or none.", DefaultValueFactory = _ => "all" };
        inject.Validators.Add(r =>
        {
            string s = r.GetValueOrDefault<string>() ?? "";
            if (!TryParseFaults(s, out _)) r.AddError($"explore: unknown fault site in '{s}' (expected {string.Join(", ", Enum.GetNames<FaultSite>())}, all or none)");
        });
        var trace = new Option<string>("--trace") { Description = "Directory for the trace of a failing schedule.", DefaultValueFactory = _ => "." };
        var explore = new Command("explore", "Explore a race scenario's interleavings with injected faults.") { name, list, schedules, seed, strategy, inject, trace };
        explore.SetAction(r =>
        {
            if (r.GetValue(list))
            {
                foreach (RaceScenario s in DmirrorRaces.All) io.Output.WriteLine(s.Name);
                return 0;
            }
            if (r.GetValue(name) is not { } scenarioName)
            {
                io.Fail("explore: a scenario NAME or --list is required");
                return Cli.UsageError;
            }
            TryParseFaults(r.GetValue(inject)!, out var faults);
            var options = new ExploreOptions
            {
                Schedules = r.GetValue(schedules),
                Seed = r.GetValue(seed),
                Strategy = Enum.Parse<ExploreStrategy>(r.GetValue(strategy)!, ignoreCase: true),
                Inject = faults,
                TraceDirectory = r.GetValue(trace),
            };
            ExploreReport report = Explorer.Run(options, DmirrorRaces.Find(scenarioName)!.Body);
            if (report.FirstFailure is { } failure)
            {
                io.Output.WriteLine(failure.ToString());
                if (failure.TracePath is not null) io.Output.WriteLine("trace: " + failure.TracePath);
            }
            io.Output.WriteLine(report.Summary);
            return report.Failures == 0 ? 0 : 1;
        });
        return explore;
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
        return list.Count > 0;
    }
}
