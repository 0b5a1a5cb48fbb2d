using System.Text;
using System.Text.Json;
using Hmm.Samples.HmmSim.Demos;

namespace Hmm.Samples.HmmSim.Report;

/// <summary>
/// The machine-readable form of one run (<c>hmmsim run NAME --json</c>): one JSON object with
/// <c>demo</c>, <c>parameters</c>, <c>counters</c> (name → number), <c>simulatedTimeNs</c>,
/// <c>wallTimeMs</c> and <c>dataVerified</c>. Tests assert on this, never on console text.
/// </summary>
public static class RunJson
{
    /// <summary>The JSON object of <paramref name="run"/>, on one line.</summary>
    public static string Format(DemoRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            Write(w, run);
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Writes the object of <paramref name="run"/> (also used inside the report's data).</summary>
    public static void Write(Utf8JsonWriter w, DemoRun run)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(run);
        w.WriteStartObject();
        w.WriteString("demo", run.Demo.Name);
        w.WriteStartObject("parameters");
        w.WriteNumber("pages", run.Parameters.Pages);
        w.WriteNumber("seed", run.Parameters.Seed);
        if (run.Parameters.Policy is { } policy) w.WriteString("policy", PolicyName(policy));
        else w.WriteNull("policy");
        w.WriteEndObject();
        w.WriteStartObject("counters");
        foreach (var (name, value) in run.Result.Counters) w.WriteNumber(name, value);
        w.WriteEndObject();
        w.WriteNumber("simulatedTimeNs", run.Result.SimulatedTimeNs);
        w.WriteNumber("wallTimeMs", Math.Round(run.WallTimeMs, 3));
        w.WriteBoolean("dataVerified", run.Result.DataVerified);
        w.WriteEndObject();
    }

    /// <summary>The command-line spelling of a policy.</summary>
    public static string PolicyName(Nouveau.GpuPolicyMode policy) => policy == Nouveau.GpuPolicyMode.Uvm ? "uvm" : "nouveau";
}
