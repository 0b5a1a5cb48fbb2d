using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Hmm.Benchmarks;

/// <summary>
/// Issue 11 acceptance 5 as a build runs it: the synthetic corpus (<see cref="AnalyzerCorpus"/>, the same
/// ~50,000 lines as <see cref="AnalyzerBuildBenchmarks"/>) written to files and compiled by the SDK's own
/// command-line compiler, <c>dotnet exec sdk/&lt;version&gt;/Roslyn/bincore/csc.dll @rsp</c>, in a child
/// process: what <c>dotnet build -p:UseSharedCompilation=false</c> runs for a project.
/// </summary>
/// <remarks>
/// <para>
/// Each op is one whole csc run: start-up and JIT of the compiler (a cold process, as in a non-shared
/// build), parsing, the DSL generator (<c>/analyzer:Hmm.Generators.dll</c>), binding, lowering, IL and
/// portable PDB emit (<c>/optimize+ /debug:portable /deterministic+</c>), and writing the assembly. The
/// only difference between the two sides is one response-file line: <c>/analyzer:Hmm.Analyzers.dll</c>
/// (both of its analyzers, HMM0xxx shape and HMM1xxx flow rules), which csc attaches to the same
/// compilation: the analyzer driver consumes the compilation events the compiler's own binding produces,
/// so analyzers add their operation trees and actions, not a second compilation. That is why this pair
/// is the acceptance figure and <see cref="AnalyzerBuildBenchmarks"/> (no emit, one bound compilation per
/// side) is the strict bound.
/// </para>
/// <para>
/// References are the running runtime's targeting pack (<c>packs/Microsoft.NETCore.App.Ref/&lt;version&gt;/ref/net*/*.dll</c>)
/// and Hmm.Runtime.dll, as a project's. No SDK analyzers or generators (NetAnalyzers, System.Text.Json...)
/// are passed on either side: they would add the same work to both and lower the ratio.
/// </para>
/// <para>
/// Every op checks csc's exit code and output: an error, or any HMM diagnostic (the fixed corpus must
/// be silent), throws, so a figure is never the cost of a failing build. The op returns csc's CPU time
/// (user + system, ms) and prints it; BenchmarkDotNet's allocation column counts this process only, not
/// the child's. <c>HMM_ANALYZER_DLL</c> replaces Hmm.Analyzers.dll, as in <see cref="AnalyzerCorpus.Analyzer"/>.
/// </para>
/// <para>
/// One op is 40 s to several minutes, longer than BenchmarkDotNet's in-process timeout, so the class brings
/// its own job (in process, 1 warm-up, 5 iterations, a 3-hour timeout): run it with <c>--filter '*CommandLineBuild*'</c>
/// and no <c>--inProcess</c>/<c>--job</c>. On a loaded host, <c>--csc-build [rounds]</c> runs the same two
/// builds alternately instead and compares csc's CPU time, which the load inflates far less than wall time.
/// </para>
/// </remarks>
[MemoryDiagnoser]
[Config(typeof(LongBuildConfig))]
public class CommandLineBuildBenchmarks
{
    /// <summary>In process, with a timeout a whole csc run fits in many times over (also <see cref="ProjectBuildBenchmarks"/>'s job).</summary>
    internal sealed class LongBuildConfig : ManualConfig
    {
        public LongBuildConfig() => AddJob(Job.Default.WithToolchain(new InProcessEmitToolchain(TimeSpan.FromHours(3), logOutput: true))
            .WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(5));
    }

    /// <summary>
    /// <c>--csc-build [rounds]</c>: the off and on builds alternately, <paramref name="rounds"/> times each, with csc's
    /// CPU and wall time per build and the on/off ratios of their sums (the first round included: every csc run is
    /// a fresh process, there is nothing to warm but the file cache).
    /// </summary>
    public static void RunAlternating(int rounds)
    {
        var bench = new CommandLineBuildBenchmarks();
        bench.Setup();
        try
        {
            double offCpu = 0, onCpu = 0, offWall = 0, onWall = 0;
            for (int r = 0; r < rounds; r++)
            {
                var off = bench.Compile("off");
                var on = bench.Compile("on");
                offCpu += off.Cpu; onCpu += on.Cpu; offWall += off.Wall; onWall += on.Wall;
                Console.WriteLine($"round {r}: cpu on/off {on.Cpu / off.Cpu:F2}, wall on/off {on.Wall / off.Wall:F2}");
            }
            Console.WriteLine($"{rounds} rounds: csc cpu on {onCpu / rounds:F0} ms / off {offCpu / rounds:F0} ms = {onCpu / offCpu:F2}; wall on {onWall / rounds:F0} ms / off {offWall / rounds:F0} ms = {onWall / offWall:F2}");
        }
        finally
        {
            bench.Cleanup();
        }
    }

    private string _dir = null!;
    private string _dotnet = null!;
    private string _csc = null!;

    [GlobalSetup]
    public void Setup()
    {
        var corpus = AnalyzerCorpus.Build();
        string root = DotnetRoot();
        _dotnet = Path.Combine(root, RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? "dotnet.exe" : "dotnet");
        _csc = SdkCompiler(root);
        string refs = ReferencePack(root);
        _dir = Path.Combine(Path.GetTempPath(), "hmm-clibuild-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(Path.Combine(_dir, "src"));
        var sources = new List<string>();
        foreach (var tree in corpus.Trees)
        {
            string file = Path.Combine(_dir, "src", tree.FilePath);
            File.WriteAllText(file, tree.ToString());
            sources.Add(file);
        }
        var common = new List<string> { "/noconfig", "/nologo", "/nostdlib+", "/target:library", "/nullable:enable", "/define:FIXED", "/optimize+",
            "/debug:portable", "/deterministic+", "/langversion:latest" };
        common.AddRange(Directory.GetFiles(refs, "*.dll").Order(StringComparer.Ordinal).Select(r => "/reference:" + Quote(r)));
        common.Add("/reference:" + Quote(typeof(Hmm.Runtime.Mm.Machine).Assembly.Location));
        common.Add("/analyzer:" + Quote(AnalyzerCorpus.GeneratorPath()));
        common.AddRange(sources.Select(Quote));
        string analyzers = Environment.GetEnvironmentVariable("HMM_ANALYZER_DLL") is { Length: > 0 } other ? Path.GetFullPath(other) : typeof(Hmm.Analyzers.Rules.HmmFlowAnalyzer).Assembly.Location;
        File.WriteAllLines(Path.Combine(_dir, "off.rsp"), [.. common, "/out:" + Quote(Path.Combine(_dir, "off.dll"))]);
        File.WriteAllLines(Path.Combine(_dir, "on.rsp"), [.. common, "/out:" + Quote(Path.Combine(_dir, "on.dll")), "/analyzer:" + Quote(analyzers)]);
        Console.WriteLine($"// csc: {_csc}; references: {refs}; corpus: {sources.Count} files, {corpus.Lines} lines in {_dir}; analyzers: {analyzers}; compiler server: {CompilerServer}");
        if (CompilerServer)
        {
            // A server build is only warm after the server has run both builds: start it and let it load the
            // generator, the analyzers and the compiler's own code before anything is measured.
            for (int i = 0; i < 2; i++) { Compile("off"); Compile("on"); }
        }
    }

    /// <summary>
    /// Whether csc hands the compilation to the compiler server (<c>/shared</c>, VBCSCompiler): what
    /// <c>dotnet build</c> does by default. <see cref="CompilerServerBuildBenchmarks"/> sets it.
    /// </summary>
    protected virtual bool CompilerServer => false;

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_dir != null && Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
        if (CompilerServer)
        {
            // Leave no server behind: the next build starts its own.
            using var stop = Process.Start(new ProcessStartInfo(_dotnet, "build-server shutdown --vbcscompiler") { RedirectStandardOutput = true, UseShellExecute = false });
            stop?.StandardOutput.ReadToEnd();
            stop?.WaitForExit();
        }
    }

    /// <summary>csc with the DSL generator only.</summary>
    [Benchmark(Baseline = true)]
    public double CscAnalyzersOff() => Compile("off").Cpu;

    /// <summary>The same csc run with Hmm.Analyzers.dll attached.</summary>
    [Benchmark]
    public double CscAnalyzersOn() => Compile("on").Cpu;

    private (double Cpu, double Wall) Compile(string side)
    {
        var start = new ProcessStartInfo(_dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = _dir };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(_csc);
        if (CompilerServer) start.ArgumentList.Add("/shared");
        start.ArgumentList.Add("@" + Path.Combine(_dir, side + ".rsp"));
        double cpu0 = ChildrenCpuMilliseconds();
        var wall = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start " + _dotnet);
        var stderr = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        wall.Stop();
        output += stderr.GetAwaiter().GetResult();
        var bad = output.Split('\n').Where(l => l.Contains(": error ", StringComparison.Ordinal) || l.Contains(" HMM", StringComparison.Ordinal)).ToList();
        if (process.ExitCode != 0 || bad.Count != 0)
            throw new InvalidOperationException($"csc ({side}) exited {process.ExitCode} with {bad.Count} errors or HMM diagnostics, the first: {bad.FirstOrDefault() ?? output}");
        // The child's CPU (with the compiler server, only the client's: the server's work is not a child's): the process is reaped by now, so it is in this process's RUSAGE_CHILDREN (Linux; NaN elsewhere).
        double cpu = ChildrenCpuMilliseconds() - cpu0;
        Console.WriteLine($"// csc {side}: cpu {cpu:F0} ms, wall {wall.Elapsed.TotalMilliseconds:F0} ms");
        return (cpu, wall.Elapsed.TotalMilliseconds);
    }

    /// <summary>User + system CPU of this process's reaped children (getrusage(RUSAGE_CHILDREN)), ms; NaN off Linux.</summary>
    internal static double ChildrenCpuMilliseconds()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) return double.NaN;
        var usage = new long[18];
        if (GetRusage(-1, usage) != 0) return double.NaN;
        // struct rusage begins with ru_utime and ru_stime, two struct timeval { long tv_sec; long tv_usec; } on 64-bit Linux.
        return (usage[0] + usage[2]) * 1e3 + (usage[1] + usage[3]) / 1e3;
    }

    [DllImport("libc", EntryPoint = "getrusage", SetLastError = true)]
    private static extern int GetRusage(int who, [Out] long[] usage);

    internal static string Quote(string path) => path.Contains(' ', StringComparison.Ordinal) ? "\"" + path + "\"" : path;

    /// <summary>The dotnet root of the running runtime (shared/Microsoft.NETCore.App/&lt;version&gt;/ → root), else DOTNET_ROOT.</summary>
    internal static string DotnetRoot()
    {
        string runtime = RuntimeEnvironment.GetRuntimeDirectory().TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);
        string? root = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetDirectoryName(runtime)));
        if (root != null && Directory.Exists(Path.Combine(root, "sdk"))) return root;
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } env && Directory.Exists(Path.Combine(env, "sdk"))) return env;
        throw new InvalidOperationException($"no .NET SDK next to the running runtime ({runtime}) nor under DOTNET_ROOT: CommandLineBuildBenchmarks needs the SDK's csc.dll");
    }

    /// <summary>
    /// csc.dll of the SDK that <c>dotnet --list-sdks</c> lists last (the newest; <c>dotnet build</c> picks it
    /// without a global.json), else the newest sdk/ directory holding one.
    /// </summary>
    internal static string SdkCompiler(string root)
    {
        var candidates = new List<string>();
        try
        {
            var start = new ProcessStartInfo(Path.Combine(root, "dotnet"), "--list-sdks") { RedirectStandardOutput = true, UseShellExecute = false };
            using var process = Process.Start(start)!;
            foreach (string line in process.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                // "10.0.401 [/usr/share/dotnet/sdk]"
                int open = line.IndexOf(" [", StringComparison.Ordinal);
                if (open > 0 && line.EndsWith(']')) candidates.Add(Path.Combine(line[(open + 2)..^1], line[..open]));
            }
            process.WaitForExit();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No runnable host: fall back to the directory listing.
        }
        if (candidates.Count == 0 && Directory.Exists(Path.Combine(root, "sdk")))
            candidates.AddRange(Directory.GetDirectories(Path.Combine(root, "sdk")).OrderBy(d => Version.TryParse(Path.GetFileName(d).Split('-')[0], out var v) ? v : new Version()));
        for (int i = candidates.Count - 1; i >= 0; i--)
        {
            string csc = Path.Combine(candidates[i], "Roslyn", "bincore", "csc.dll");
            if (File.Exists(csc)) return csc;
        }
        throw new InvalidOperationException($"no Roslyn/bincore/csc.dll in any SDK under {root} ({string.Join(", ", candidates)}): CommandLineBuildBenchmarks needs the SDK's command-line compiler");
    }

    /// <summary>The targeting pack of the running runtime's major version: packs/Microsoft.NETCore.App.Ref/&lt;newest x.*&gt;/ref/net&lt;x&gt;.0.</summary>
    private static string ReferencePack(string root)
    {
        int major = Environment.Version.Major;
        string packs = Path.Combine(root, "packs", "Microsoft.NETCore.App.Ref");
        var dir = Directory.Exists(packs)
            ? Directory.GetDirectories(packs).Where(d => Path.GetFileName(d).StartsWith(major + ".", StringComparison.Ordinal))
                .OrderBy(d => Version.TryParse(Path.GetFileName(d).Split('-')[0], out var v) ? v : new Version()).LastOrDefault()
            : null;
        string? refs = dir == null ? null : Path.Combine(dir, "ref", "net" + major + ".0");
        if (refs == null || !Directory.Exists(refs)) throw new InvalidOperationException($"no Microsoft.NETCore.App.Ref {major}.x targeting pack under {packs}");
        return refs;
    }
}
