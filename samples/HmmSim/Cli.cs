using System.CommandLine;
using Hmm.Samples.HmmSim.Commands;

namespace Hmm.Samples.HmmSim;

/// <summary>
/// The hmmsim command line (System.CommandLine): the tour by default, <c>list</c>, <c>run</c>,
/// <c>report</c>, <c>dmirror</c>, <c>explore</c>. A command-line mistake (unknown demo, a size out
/// of range, an unknown policy, a missing value) is one line on the error writer and exit code 2,
/// before anything runs or is written.
/// </summary>
public static class Cli
{
    /// <summary>Exit code of a command-line mistake.</summary>
    public const int UsageError = 2;

    /// <summary>Runs hmmsim on the process's console.</summary>
    public static int Run(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs hmmsim with <paramref name="args"/>, writing to <paramref name="output"/> and <paramref name="error"/>; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var io = new CommandIO(output, error);
        RootCommand root = CommandTree.Build(io);
        ParseResult parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            io.Fail(parsed.Errors[0].Message);
            return UsageError;
        }
        try
        {
            return parsed.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Not a usage mistake but a bug in a demo or the simulator: the one-line summary, then
            // the whole exception for the report of it.
            io.Fail($"internal error: {e.GetType().Name}: {e.Message}");
            error.WriteLine(e);
            return 1;
        }
    }
}
