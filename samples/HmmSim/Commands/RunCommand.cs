using Hmm.Samples.HmmSim.Demos;
using Hmm.Samples.HmmSim.Report;
using Hmm.Samples.HmmSim.Rendering;

namespace Hmm.Samples.HmmSim.Commands;

/// <summary><c>hmmsim run NAME [--pages N] [--seed S] [--policy nouveau|uvm] [--json]</c>: one demo, for people or (with --json) for programs.</summary>
public static class RunCommand
{
    /// <summary>Runs <paramref name="demo"/>; exit code 0 when its data verified, 1 otherwise.</summary>
    public static int Run(CommandIO io, Demo demo, DemoParameters parameters, bool json)
    {
        ArgumentNullException.ThrowIfNull(io);
        ArgumentNullException.ThrowIfNull(demo);
        if (!json) DemoView.WriteHeading(io.Console, demo, 1, 1);
        var run = DemoRun.Execute(demo, parameters, record: false);
        if (json) io.Output.WriteLine(RunJson.Format(run));
        else DemoView.WriteResult(io.Console, run);
        return run.Result.DataVerified ? 0 : 1;
    }
}
