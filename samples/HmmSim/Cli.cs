namespace Hmm.Samples.HmmSim;

/// <summary>The hmmsim command line: <c>hmmsim [tour|help]</c>.</summary>
public static class Cli
{
    /// <summary>Runs the command named by <paramref name="args"/>, writing to <paramref name="output"/>; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter output)
    {
        string command = args.Length == 0 ? "tour" : args[0];
        switch (command)
        {
            case "tour":
                Tour.Run(output);
                return 0;
            case "dmirror":
                DmirrorScenario.Run(output);
                return 0;
            case "explore":
                return ExploreCommand.Run(args.AsSpan(1), output);
            case "help" or "--help" or "-h":
                output.WriteLine("usage: hmmsim [tour|dmirror|explore]");
                output.WriteLine("  tour      walk through address spaces, COW, notifiers and hmm_range_fault");
                output.WriteLine("  dmirror   drive the dmirror test device: migrate to device memory, snapshot, CPU touch, eviction");
                output.WriteLine("  explore   explore a race scenario's interleavings with injected faults (explore --list)");
                return 0;
            default:
                output.WriteLine($"hmmsim: unknown command '{command}' (try 'hmmsim help')");
                return 2;
        }
    }
}
