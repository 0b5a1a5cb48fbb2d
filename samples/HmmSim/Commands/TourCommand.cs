using System.Diagnostics;
using System.Globalization;
using Hmm.Samples.HmmSim.Demos;
using Hmm.Samples.HmmSim.Rendering;
using Spectre.Console;

namespace Hmm.Samples.HmmSim.Commands;

/// <summary>
/// The tour (hmmsim with no verb): every demo at its default size, each with its explanation, its
/// counters, simulated and wall time, under a progress bar on a terminal. Exit code 0 when every
/// demo verified its data.
/// </summary>
public static class TourCommand
{
    /// <summary>Runs the tour.</summary>
    public static int Run(CommandIO io)
    {
        ArgumentNullException.ThrowIfNull(io);
        var demos = DemoCatalog.All;
        var console = io.Console;
        console.MarkupLine($"[bold]hmmsim tour[/]: {demos.Count} demos of Linux HMM drivers on a simulated machine (drivers.md F.1–F.4)");
        console.WriteLine();
        var watch = Stopwatch.StartNew();
        int failed = 0;
        if (io.Interactive)
        {
            console.Progress().AutoClear(true).HideCompleted(true)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("tour", maxValue: demos.Count);
                    for (int i = 0; i < demos.Count; i++)
                    {
                        task.Description = demos[i].Name;
                        failed += RunOne(console, demos[i], i + 1, demos.Count);
                        task.Increment(1);
                    }
                });
        }
        else
        {
            for (int i = 0; i < demos.Count; i++) failed += RunOne(console, demos[i], i + 1, demos.Count);
        }
        string wall = watch.Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture);
        console.MarkupLine(failed == 0
            ? $"[bold]tour done[/]: {demos.Count} demos, every byte verified, {wall} s wall time"
            : $"[red]tour done: {failed} of {demos.Count} demos failed[/], {wall} s wall time");
        return failed == 0 ? 0 : 1;
    }

    private static int RunOne(IAnsiConsole console, Demo demo, int index, int count)
    {
        DemoView.WriteHeading(console, demo, index, count);
        DemoRun run;
        try
        {
            run = DemoRun.Execute(demo, demo.Defaults, record: false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // One broken demo must not hide the others: say what broke and go on; the exit code tells.
            console.MarkupLine($"[red]{Markup.Escape(demo.Name)} failed:[/] {Markup.Escape(e.GetType().Name + ": " + e.Message)}");
            console.WriteLine();
            return 1;
        }
        DemoView.WriteResult(console, run);
        return run.Result.DataVerified ? 0 : 1;
    }
}
