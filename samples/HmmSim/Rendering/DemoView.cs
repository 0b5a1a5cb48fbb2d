using System.Globalization;
using Hmm.Samples.HmmSim.Demos;
using Hmm.Samples.HmmSim.Report;
using Spectre.Console;

namespace Hmm.Samples.HmmSim.Rendering;

/// <summary>How a demo and its run look on a console: heading, explanation, counter table, times.</summary>
public static class DemoView
{
    /// <summary>The heading and explanation (before the run).</summary>
    public static void WriteHeading(IAnsiConsole console, Demo demo, int index, int count)
    {
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(demo);
        console.Write(new Rule($"[bold]{index}/{count} {Markup.Escape(demo.Name)}[/] [grey]({Markup.Escape(demo.Section)})[/]").LeftJustified());
        console.MarkupLine(Markup.Escape(demo.Explanation));
    }

    /// <summary>The counters that moved (zeros left out), simulated time, wall time and the data check.</summary>
    public static void WriteResult(IAnsiConsole console, DemoRun run)
    {
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(run);
        var table = new Table().Border(TableBorder.Rounded).AddColumn("counter").AddColumn(new TableColumn("value").RightAligned());
        int shown = 0;
        foreach (var (name, value) in run.Result.Counters)
        {
            if (value == 0) continue;
            table.AddRow(Markup.Escape(name), value.ToString("N0", CultureInfo.InvariantCulture));
            shown++;
        }
        if (shown == 0) table.AddRow("(every counter is zero)", "");
        var p = run.Parameters;
        string policy = p.Policy is { } pol ? ", policy " + RunJson.PolicyName(pol) : "";
        console.Write(table);
        string verified = run.Result.DataVerified ? "[green]data verified[/]" : "[red]DATA MISMATCH[/]";
        console.MarkupLine($"{p.Pages} pages{policy}, seed {p.Seed}: simulated [bold]{FormatNs(run.Result.SimulatedTimeNs)}[/], wall {run.WallTimeMs.ToString("F0", CultureInfo.InvariantCulture)} ms, {verified}");
        console.WriteLine();
    }

    /// <summary>A simulated duration in the unit a person reads best.</summary>
    public static string FormatNs(long ns) => ns switch
    {
        >= 1_000_000_000 => (ns / 1e9).ToString("F3", CultureInfo.InvariantCulture) + " s",
        >= 1_000_000 => (ns / 1e6).ToString("F3", CultureInfo.InvariantCulture) + " ms",
        >= 1_000 => (ns / 1e3).ToString("F1", CultureInfo.InvariantCulture) + " µs",
        _ => ns.ToString(CultureInfo.InvariantCulture) + " ns",
    };
}
