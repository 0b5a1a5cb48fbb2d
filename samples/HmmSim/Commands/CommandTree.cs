using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Hmm.Runtime.Scheduling;
using Hmm.Samples.HmmSim.Demos;
using Hmm.Samples.Nouveau;
using Hmm.Samples.TestHmm.Exploration;

namespace Hmm.Samples.HmmSim.Commands;

/// <summary>
/// The hmmsim command tree: options, arguments, their validation and the action of each verb.
/// Validation lives on the symbols, so every mistake is a parse error the caller reports in one
/// line with exit code 2 before anything runs.
/// </summary>
public static class CommandTree
{
    /// <summary>The root command (the tour) with every verb, writing through <paramref name="io"/>.</summary>
    public static RootCommand Build(CommandIO io)
    {
        ArgumentNullException.ThrowIfNull(io);
        var root = new RootCommand("hmmsim: Linux HMM drivers on a simulated machine. With no verb, the tour runs every demo.");
        root.SetAction(_ => TourCommand.Run(io));

        var tour = new Command("tour", "Run every demo with an explanation, its counters, simulated and wall time (the default).");
        tour.SetAction(_ => TourCommand.Run(io));
        root.Subcommands.Add(tour);

        var list = new Command("list", "Print one demo per line: its name, a space, its one-line description.");
        list.SetAction(_ =>
        {
            foreach (var d in DemoCatalog.All) io.Output.WriteLine(d.Name + " " + d.Description);
            return 0;
        });
        root.Subcommands.Add(list);

        root.Subcommands.Add(BuildRun(io));
        root.Subcommands.Add(BuildReport(io));

        var dmirror = new Command("dmirror", "Drive the dmirror test device through its ioctls (lib/test_hmm style).");
        dmirror.SetAction(_ =>
        {
            DmirrorScenario.Run(io.Output);
            return 0;
        });
        root.Subcommands.Add(dmirror);
        root.Subcommands.Add(ExploreCommand.Build(io));
        return root;
    }

    private static Command BuildRun(CommandIO io)
    {
        var name = DemoName();
        var pages = new Option<int?>("--pages")
        {
            Description = "Buffer size in 4 KiB pages (each demo has its default and its range).",
            CustomParser = r =>
            {
                string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
                if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) || n < 1)
                {
                    r.AddError($"--pages must be a positive number of pages (at most {int.MaxValue}), not '{text}'");
                    return null;
                }
                return n;
            },
        };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the data pattern and random walks.", DefaultValueFactory = _ => 1 };
        var policy = PolicyOption();
        var json = new Option<bool>("--json") { Description = "Print one JSON object (demo, parameters, counters, simulatedTimeNs, wallTimeMs, dataVerified)." };
        var run = new Command("run", "Run one demo.") { name, pages, seed, policy, json };
        run.SetAction(r =>
        {
            var demo = DemoCatalog.Find(r.GetValue(name)!)!;
            string? policyName = r.GetValue(policy);
            var parameters = new DemoParameters(
                r.GetValue(pages) ?? demo.DefaultPages,
                r.GetValue(seed),
                !demo.HasPolicy ? null : policyName is null ? demo.DefaultPolicy : ParsePolicy(policyName));
            if (policyName is not null && !demo.HasPolicy)
            {
                io.Fail($"--policy does not apply to '{demo.Name}' (it has no GPU residency policy)");
                return Cli.UsageError;
            }
            if (demo.Check(parameters) is { } problem)
            {
                io.Fail(problem);
                return Cli.UsageError;
            }
            return RunCommand.Run(io, demo, parameters, r.GetValue(json));
        });
        return run;
    }

    private static Command BuildReport(CommandIO io)
    {
        var outDir = new Option<string>("--out") { Description = "Directory to write index.html into.", Required = true };
        outDir.Validators.Add(r =>
        {
            string? dir = r.GetValueOrDefault<string>();
            if (string.IsNullOrWhiteSpace(dir)) r.AddError("--out needs a directory");
            else if (File.Exists(dir)) r.AddError($"--out '{dir}' is a file, not a directory");
        });
        var names = new Argument<string[]>("NAME") { Description = "Demos to include (default: all).", Arity = ArgumentArity.ZeroOrMore };
        names.Validators.Add(r =>
        {
            foreach (string n in r.GetValueOrDefault<string[]>() ?? [])
                if (DemoCatalog.Find(n) is null) { r.AddError(UnknownDemo(n)); return; }
        });
        AddDemoCompletions(names);
        var report = new Command("report", "Run demos and write one self-contained HTML page with their charts and counters.") { outDir, names };
        report.SetAction(r =>
        {
            var chosen = r.GetValue(names) is { Length: > 0 } given ? given.Select(n => DemoCatalog.Find(n)!).ToList() : [.. DemoCatalog.All];
            return ReportCommand.Run(io, r.GetValue(outDir)!, chosen);
        });
        return report;
    }

    /// <summary>The NAME argument of <c>run</c>: one known demo.</summary>
    private static Argument<string> DemoName()
    {
        var name = new Argument<string>("NAME") { Description = "The demo (see 'hmmsim list')." };
        name.Validators.Add(r =>
        {
            string? n = r.GetValueOrDefault<string>();
            if (n is not null && DemoCatalog.Find(n) is null) r.AddError(UnknownDemo(n));
        });
        AddDemoCompletions(name);
        return name;
    }

    private static void AddDemoCompletions(Argument argument)
        => argument.CompletionSources.Add(_ => DemoCatalog.All.Select(d => new System.CommandLine.Completions.CompletionItem(d.Name, detail: d.Description)));

    private static string UnknownDemo(string name) => $"unknown demo '{name}' (try 'hmmsim list')";

    private static Option<string> PolicyOption()
    {
        var policy = new Option<string>("--policy") { Description = "GPU residency policy: nouveau (map in place, migrate on bind) or uvm (migrate on fault, thrashing, prefetch)." };
        policy.Validators.Add(r =>
        {
            string? p = r.GetValueOrDefault<string>();
            if (p is not null && p is not ("nouveau" or "uvm")) r.AddError($"unknown policy '{p}' (expected nouveau or uvm)");
        });
        policy.CompletionSources.Add("nouveau", "uvm");
        return policy;
    }

    private static GpuPolicyMode ParsePolicy(string name) => name == "uvm" ? GpuPolicyMode.Uvm : GpuPolicyMode.Nouveau;
}
