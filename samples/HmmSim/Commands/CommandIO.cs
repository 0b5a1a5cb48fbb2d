using Spectre.Console;

namespace Hmm.Samples.HmmSim.Commands;

/// <summary>
/// Where a command writes: plain writers for machine-readable output and errors, and a Spectre
/// console for people — with colour and live progress only when the output is the process's own
/// terminal and <c>NO_COLOR</c> is not set; redirected output and in-process callers get plain text.
/// </summary>
public sealed class CommandIO
{
    /// <summary>Writers for one invocation.</summary>
    public CommandIO(TextWriter output, TextWriter error)
    {
        Output = output;
        Error = error;
        bool terminal = ReferenceEquals(output, System.Console.Out) && !System.Console.IsOutputRedirected;
        bool noColor = !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NO_COLOR"));
        Interactive = terminal;
        Console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal && !noColor ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = terminal ? InteractionSupport.Detect : InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        if (!terminal) Console.Profile.Width = 110;
    }

    /// <summary>Plain output (JSON, lists).</summary>
    public TextWriter Output { get; }

    /// <summary>Errors.</summary>
    public TextWriter Error { get; }

    /// <summary>Whether live displays (progress) may be drawn.</summary>
    public bool Interactive { get; }

    /// <summary>The console for people.</summary>
    public IAnsiConsole Console { get; }

    /// <summary>Writes <c>hmmsim: MESSAGE</c> as one line on the error writer.</summary>
    public void Fail(string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        Error.WriteLine("hmmsim: " + message.ReplaceLineEndings(" ").Replace('\t', ' ').Trim());
    }
}
