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
            case "help" or "--help" or "-h":
                output.WriteLine("usage: hmmsim [tour|dmirror]");
                output.WriteLine("  tour      walk through address spaces, COW, notifiers and hmm_range_fault");
                output.WriteLine("  dmirror   drive the dmirror test device: migrate to device memory, snapshot, CPU touch, eviction");
                return 0;
            default:
                output.WriteLine($"hmmsim: unknown command '{command}' (try 'hmmsim help')");
                return 2;
        }
    }
}
