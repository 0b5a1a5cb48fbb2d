using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

namespace Hmm.Benchmarks;

/// <summary>
/// <c>--jit-profile [rounds]</c>: where a cold csc's on-side time goes, on <see cref="ProjectBuildBenchmarks"/>' SDK
/// command lines. Each round runs the off and the on build once with an EventPipe trace of the runtime's JIT and
/// loader events (<c>DOTNET_EnableEventPipe=1</c>, <c>DOTNET_EventPipeConfig=Microsoft-Windows-DotNETRuntime:0x18:5</c>,
/// a <c>.nettrace</c> file) and csc's <c>/reportanalyzer</c>, and prints per module the methods jitted and the JIT
/// time (MethodJittingStarted to MethodLoadVerbose on the same thread, per method), split by optimization tier
/// (tier 0 / instrumented tier jitted on the thread that first calls the method; tier 1 rejitted in the background),
/// next to the csc CPU of the run and the analyzer execution time csc reports.
/// </summary>
/// <remarks>
/// The JIT intervals are thread time between two events, so on a loaded host they include preemption: compare
/// modules and sides within one run rather than with CPU figures of another. <c>/reportanalyzer</c>'s times are
/// the analyzers' actions as csc times them, including the JIT of analyzer code first called inside an action.
/// Set <c>HMM_ANALYZER_DLL</c> to profile another build of the analyzer (e.g. its ReadyToRun build).
/// </remarks>
internal static partial class ColdJitProfile
{
    public static void Run(int rounds)
    {
        var bench = new ProjectBuildBenchmarks();
        bench.Setup();
        string traces = Path.Combine(Path.GetTempPath(), "hmm-jitprofile-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(traces);
        try
        {
            for (int r = 0; r < rounds; r++)
                foreach (string side in new[] { "off", "on" })
                {
                    string trace = Path.Combine(traces, $"{side}{r}.nettrace");
                    string report = bench.WriteVariant(side, side + "-report", "/reportanalyzer");
                    var env = new Dictionary<string, string>
                    {
                        ["DOTNET_EnableEventPipe"] = "1",
                        ["DOTNET_EventPipeOutputPath"] = trace,
                        // JIT (0x10) and Loader (0x8, module paths) keywords at verbose level (MethodJittingStarted, MethodLoadVerbose).
                        ["DOTNET_EventPipeConfig"] = "Microsoft-Windows-DotNETRuntime:0x18:5",
                    };
                    var (cpu, wall, output) = bench.CompileCapture(report, env);
                    Console.WriteLine($"== round {r} {side}: csc cpu {cpu:F0} ms, wall {wall:F0} ms, load {ProjectBuildBenchmarks.LoadAverage()}");
                    PrintAnalyzerReport(output);
                    PrintJit(trace);
                    File.Delete(trace);
                }
        }
        finally
        {
            bench.Cleanup();
            if (Directory.Exists(traces)) Directory.Delete(traces, recursive: true);
        }
    }

    /// <summary>One module's JIT figures (ms of thread time, methods).</summary>
    private sealed class ModuleJit
    {
        public double ForegroundMs;
        public int Foreground;
        public double Tier1Ms;
        public int Tier1;
        public int ReadyToRun;
    }

    private static void PrintJit(string trace)
    {
        var modules = new Dictionary<long, string>();
        var started = new Dictionary<(int Thread, long Method), double>();
        var perModule = new Dictionary<string, ModuleJit>(StringComparer.Ordinal);
        double total = 0;
        using (var source = new EventPipeEventSource(trace))
        {
            source.Clr.LoaderModuleLoad += d => modules[d.ModuleID] = Path.GetFileName(d.ModuleILPath);
            source.Clr.MethodJittingStarted += d => started[(d.ThreadID, d.MethodID)] = d.TimeStampRelativeMSec;
            source.Clr.MethodLoadVerbose += d => Record(d, modules, started, perModule, ref total);
            source.Process();
        }
        Console.WriteLine($"   JIT total {total:F0} ms (thread time, tier 0 + tier 1)");
        Console.WriteLine("   module                                        tier0 n    tier0 ms   tier1 n   tier1 ms   R2R n");
        foreach (var (name, m) in perModule.OrderByDescending(p => p.Value.ForegroundMs + p.Value.Tier1Ms).Take(25))
            Console.WriteLine($"   {name,-44} {m.Foreground,8} {m.ForegroundMs,10:F0} {m.Tier1,9} {m.Tier1Ms,10:F0} {m.ReadyToRun,7}");
    }

    private static void Record(MethodLoadUnloadVerboseTraceData d, Dictionary<long, string> modules, Dictionary<(int, long), double> started,
        Dictionary<string, ModuleJit> perModule, ref double total)
    {
        string module = modules.TryGetValue(d.ModuleID, out var name) ? name : d.ModuleID == 0 ? "(dynamic/stubs)" : "module 0x" + d.ModuleID.ToString("x", CultureInfo.InvariantCulture);
        if (!perModule.TryGetValue(module, out var m)) perModule[module] = m = new ModuleJit();
        string tier = d.OptimizationTier.ToString();
        if (tier.Contains("ReadyToRun", StringComparison.Ordinal) || tier.Contains("PreJIT", StringComparison.Ordinal))
        {
            m.ReadyToRun++;
            return;
        }
        if (!started.Remove((d.ThreadID, d.MethodID), out double t0)) return;
        double ms = d.TimeStampRelativeMSec - t0;
        total += ms;
        if (tier == "OptimizedTier1" || tier == "OptimizedTier1OSR")
        {
            m.Tier1++;
            m.Tier1Ms += ms;
        }
        else
        {
            m.Foreground++;
            m.ForegroundMs += ms;
        }
    }

    [GeneratedRegex(@"^\s*(Total analyzer execution time|Total generator execution time|[0-9.<]+\s+\d+\s+\S*(?:Hmm|NetAnalyzers|CodeAnalysis)\S*)", RegexOptions.CultureInvariant)]
    private static partial Regex ReportLine();

    /// <summary>The totals and the per-assembly lines of csc's <c>/reportanalyzer</c> output.</summary>
    private static void PrintAnalyzerReport(string output)
    {
        foreach (string line in output.Split('\n'))
        {
            string l = line.TrimEnd('\r');
            if (l.Contains("execution time", StringComparison.Ordinal) || l.Contains("Hmm.", StringComparison.Ordinal) && !l.Contains(": warning ", StringComparison.Ordinal) && !l.Contains(": error ", StringComparison.Ordinal))
                Console.WriteLine("   report: " + l.Trim());
            else if (ReportLine().IsMatch(l)) Console.WriteLine("   report: " + l.Trim());
        }
    }
}
