using System.Text.Json;
using Hmm.Samples.HmmSim;
using NUnit.Framework;

namespace Hmm.HmmSim.Tests;

/// <summary>What one in-process hmmsim invocation returned and printed.</summary>
public sealed record HmmSimOutcome(int ExitCode, string Stdout, string Stderr)
{
    /// <summary>Stderr's non-empty lines.</summary>
    public string[] ErrorLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}

/// <summary>Calls hmmsim through its entry point (<see cref="Cli.Run(string[], TextWriter, TextWriter)"/>) with captured stdout and stderr.</summary>
public static class HmmSimProcess
{
    /// <summary>Runs <c>hmmsim ARGS</c>.</summary>
    public static HmmSimOutcome Invoke(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = Cli.Run(args, stdout, stderr);
        return new HmmSimOutcome(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs <c>hmmsim run ARGS --json</c>, asserts exit 0 and returns the parsed object.</summary>
    public static JsonElement RunJson(params string[] args)
    {
        var outcome = Invoke(["run", .. args, "--json"]);
        Assert.That(outcome.ExitCode, Is.Zero, outcome.Stderr + outcome.Stdout);
        Assert.That(outcome.Stderr, Is.Empty);
        string text = outcome.Stdout.Trim();
        Assert.That(text.Split('\n'), Has.Length.EqualTo(1), "one JSON object on one line");
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.Clone();
    }
}

/// <summary>Reading the --json object.</summary>
public static class RunJsonExtensions
{
    /// <summary>Counter <paramref name="name"/>.</summary>
    public static long Counter(this JsonElement run, string name) => run.GetProperty("counters").GetProperty(name).GetInt64();

    /// <summary>The <c>dataVerified</c> flag.</summary>
    public static bool DataVerified(this JsonElement run) => run.GetProperty("dataVerified").GetBoolean();

    /// <summary>The <c>simulatedTimeNs</c> value.</summary>
    public static long SimulatedNs(this JsonElement run) => run.GetProperty("simulatedTimeNs").GetInt64();

    /// <summary>Parameter <c>pages</c>.</summary>
    public static int Pages(this JsonElement run) => run.GetProperty("parameters").GetProperty("pages").GetInt32();
}
