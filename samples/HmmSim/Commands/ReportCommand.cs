using Hmm.Samples.HmmSim.Demos;
using Hmm.Samples.HmmSim.Report;
using Spectre.Console;

namespace Hmm.Samples.HmmSim.Commands;

/// <summary>
/// <c>hmmsim report --out DIR [NAME...]</c>: runs the demos with their timelines recorded and writes
/// <c>DIR/index.html</c>. The page is written into a fresh sibling directory first and moved into
/// place only when complete, so a failure leaves nothing half-written in DIR.
/// </summary>
public static class ReportCommand
{
    /// <summary>Runs <paramref name="demos"/> and writes the report; exit code 0, or 1 when a demo failed its data check or the page could not be written.</summary>
    public static int Run(CommandIO io, string outDir, IReadOnlyList<Demo> demos)
    {
        ArgumentNullException.ThrowIfNull(io);
        ArgumentNullException.ThrowIfNull(demos);
        string target = Path.GetFullPath(outDir);
        string parent = Path.GetDirectoryName(target.TrimEnd(Path.DirectorySeparatorChar)) ?? target;
        var runs = new List<DemoRun>(demos.Count);
        for (int i = 0; i < demos.Count; i++)
        {
            io.Console.MarkupLine($"[grey]{i + 1}/{demos.Count}[/] {Markup.Escape(demos[i].Name)}");
            runs.Add(DemoRun.Execute(demos[i], demos[i].Defaults, record: true));
        }
        string html = ReportPage.Render(runs);

        string staging = Path.Combine(parent, $".{Path.GetFileName(target)}.hmmsim-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(parent);
            Directory.CreateDirectory(staging);
            File.WriteAllText(Path.Combine(staging, "index.html"), html);
            if (Directory.Exists(target))
            {
                // Same file system: a rename replaces index.html in one step.
                File.Move(Path.Combine(staging, "index.html"), Path.Combine(target, "index.html"), overwrite: true);
            }
            else
            {
                Directory.Move(staging, target);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            io.Fail($"report: cannot write '{target}': {e.Message}");
            return 1;
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
        int failed = runs.Count(r => !r.Result.DataVerified);
        io.Console.MarkupLine($"wrote [bold]{Markup.Escape(Path.Combine(target, "index.html"))}[/] ({runs.Count} demos{(failed > 0 ? $", {failed} failed their data check" : "")})");
        return failed == 0 ? 0 : 1;
    }
}
