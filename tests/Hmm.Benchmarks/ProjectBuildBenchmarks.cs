using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Hmm.Benchmarks;

/// <summary>
/// Issue 11 acceptance 5 with the compiler command line <c>dotnet build</c> itself generates: the synthetic corpus
/// (<see cref="AnalyzerCorpus"/>, ~50,000 lines) written into a temporary SDK project (a <c>net10.0</c> class library
/// as <c>dotnet new classlib</c> makes it: nullable and implicit usings on, <c>FIXED</c> defined, and the implicit
/// <c>using System.Threading</c> removed, since its SpinLock and Mutex clash with Hmm.Runtime.Locking's), referencing
/// Hmm.Runtime.dll and the DSL generator as an analyzer, as samples/Nouveau consumes them. MSBuild computes the csc
/// arguments without compiling (<c>-p:ProvideCommandLineArgs=true -p:SkipCompilerExecution=true</c>, and a target
/// after <c>CoreCompile</c>, injected through <c>CustomAfterMicrosoftCommonTargets</c>, writes
/// <c>@(CscCommandLineArgs)</c> to a file); each op then runs exactly those arguments with the SDK's csc.dll.
/// </summary>
/// <remarks>
/// <para>
/// What the SDK adds and the bare <see cref="CommandLineBuildBenchmarks"/> does not (on BOTH sides here): the SDK's
/// analyzers and generators for a net10.0 library (Microsoft.CodeAnalysis.NetAnalyzers, the targeting pack's
/// generators: System.Text.Json, LibraryImport/ComInterface, Logging, Regex...), the generated
/// <c>.GeneratedMSBuildEditorConfig.editorconfig</c> and the analysis-level <c>.globalconfig</c>, the implicit
/// global usings and assembly-info files, <c>/warnaserror-</c>, the SDK's defines (<c>TRACE;DEBUG;NET;NET10_0;...</c>),
/// a reference assembly (<c>/refout</c>), and the configuration's <c>/optimize</c> and <c>/debug</c> switches.
/// The configuration is <c>dotnet build</c>'s default, Debug; <c>HMM_PROJECT_CONFIGURATION=Release</c> selects
/// Release (<c>/optimize+</c>, as the bare pair). Setup obtains the arguments twice, from the project without and
/// with <c>&lt;Analyzer Include="Hmm.Analyzers.dll" /&gt;</c>, and fails unless they differ by exactly that one
/// <c>/analyzer:</c> argument: the on side is the off side plus Hmm.Analyzers.dll, nothing else (samples/Nouveau
/// does not add Hmm.Analyzers.CodeFixes.dll, so neither does this pair; <c>HMM_ANALYZER_DLL</c> swaps the
/// analyzer dll, e.g. for a ReadyToRun build of it).
/// </para>
/// <para>
/// Each op is one csc run of those arguments in the project directory: a fresh <c>dotnet exec csc.dll</c> child
/// process, which is what <c>dotnet build</c> runs with <c>UseSharedCompilation=false</c> (this machine's tool
/// environment) or on a cold compiler server; <see cref="ProjectServerBuildBenchmarks"/> hands the same arguments to
/// the warm compiler server (<c>/shared</c>). Every op checks csc's exit code and output (an error, or any HMM
/// diagnostic, throws; other warnings are the corpus's and the SDK analyzers', the same on both sides) and returns
/// csc's CPU time in ms (<c>getrusage(RUSAGE_CHILDREN)</c>: user + system of the reaped child; with the server,
/// the client's only, so wall time is the figure there). BenchmarkDotNet's allocation column is this process only.
/// </para>
/// <para>
/// Run with <c>--filter '*ProjectBuild*'</c> and no <c>--inProcess</c>/<c>--job</c>: the class brings its own job (in
/// process, 1 warm-up, 5 iterations, a 3-hour timeout). On a loaded host <c>--project-build [rounds] [server]</c>
/// runs the two builds alternately and compares CPU (and wall) time.
/// </para>
/// </remarks>
[MemoryDiagnoser]
[Config(typeof(CommandLineBuildBenchmarks.LongBuildConfig))]
public partial class ProjectBuildBenchmarks
{
    /// <summary>
    /// <c>--project-build [rounds] [server]</c>: off and on alternately, <paramref name="rounds"/> times each, csc CPU and
    /// wall per build and the on/off ratios of the sums (every cold csc run is a fresh process: nothing to warm but
    /// the file cache, so the first round counts).
    /// </summary>
    public static void RunAlternating(int rounds, bool server)
    {
        var bench = server ? new ProjectServerBuildBenchmarks() : new ProjectBuildBenchmarks();
        bench.Setup();
        try
        {
            double offCpu = 0, onCpu = 0, offWall = 0, onWall = 0;
            for (int r = 0; r < rounds; r++)
            {
                var off = bench.Compile("off");
                var on = bench.Compile("on");
                offCpu += off.Cpu; onCpu += on.Cpu; offWall += off.Wall; onWall += on.Wall;
                Console.WriteLine($"round {r}: cpu on/off {on.Cpu / off.Cpu:F2}, wall on/off {on.Wall / off.Wall:F2}; load {LoadAverage()}");
            }
            Console.WriteLine($"{rounds} rounds ({(server ? "compiler server" : "cold csc")}): csc cpu on {onCpu / rounds:F0} ms / off {offCpu / rounds:F0} ms = {onCpu / offCpu:F2}; wall on {onWall / rounds:F0} ms / off {offWall / rounds:F0} ms = {onWall / offWall:F2}");
        }
        finally
        {
            bench.Cleanup();
        }
    }

    /// <summary>
    /// <c>--analyzer-swap [rounds] &lt;dll&gt;</c>: the cold on-side build with this build's Hmm.Analyzers.dll and with
    /// <paramref name="other"/> (another build of it, e.g. ReadyToRun) alternately, csc CPU and wall of each.
    /// </summary>
    public static void RunAnalyzerSwap(int rounds, string other)
    {
        var bench = new ProjectBuildBenchmarks();
        bench.Setup();
        try
        {
            string swapped = bench.WriteVariant("on", "on-other", analyzer: other);
            double ilCpu = 0, otherCpu = 0, ilWall = 0, otherWall = 0;
            for (int r = 0; r < rounds; r++)
            {
                var il = bench.Compile("on");
                var o = bench.CompileCapture(swapped, null);
                ilCpu += il.Cpu; otherCpu += o.Cpu; ilWall += il.Wall; otherWall += o.Wall;
                Console.WriteLine($"round {r}: cpu other/this {o.Cpu / il.Cpu:F2}, wall other/this {o.Wall / il.Wall:F2}; load {LoadAverage()}");
            }
            Console.WriteLine($"{rounds} rounds, on side: csc cpu with {Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(other)))}/{Path.GetFileName(other)} {otherCpu / rounds:F0} ms / with this build's {ilCpu / rounds:F0} ms = {otherCpu / ilCpu:F2}; wall {otherWall / rounds:F0} / {ilWall / rounds:F0} ms = {otherWall / ilWall:F2}");
        }
        finally
        {
            bench.Cleanup();
        }
    }

    private string _dir = null!;
    private string _project = null!;
    private string _dotnet = null!;
    private string _csc = null!;

    /// <summary>The project directory csc runs in (its arguments name sources and obj/ relative to it).</summary>
    internal string ProjectDirectory => _project;

    /// <summary>The SDK's csc.dll the builds run.</summary>
    internal string Compiler => _csc;

    /// <summary>The dotnet host.</summary>
    internal string Dotnet => _dotnet;

    /// <summary>Whether csc hands the compilation to the compiler server (<c>/shared</c>).</summary>
    protected virtual bool CompilerServer => false;

    [GlobalSetup]
    public void Setup()
    {
        var corpus = AnalyzerCorpus.Build();
        string root = CommandLineBuildBenchmarks.DotnetRoot();
        _dotnet = Path.Combine(root, OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet");
        _csc = CommandLineBuildBenchmarks.SdkCompiler(root);
        _dir = Path.Combine(Path.GetTempPath(), "hmm-projbuild-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        _project = Path.Combine(_dir, "Corpus");
        Directory.CreateDirectory(_project);
        foreach (var tree in corpus.Trees) File.WriteAllText(Path.Combine(_project, tree.FilePath), tree.ToString());
        string analyzers = AnalyzerPath();
        string configuration = Environment.GetEnvironmentVariable("HMM_PROJECT_CONFIGURATION") is { Length: > 0 } c ? c : "Debug";

        // The hook that writes the arguments: a separate file, so the project is exactly what a user writes.
        string hook = Path.Combine(_dir, "csc-args.targets");
        File.WriteAllText(hook, """
            <Project>
              <Target Name="HmmWriteCscCommandLine" AfterTargets="CoreCompile">
                <WriteLinesToFile File="$(HmmCscArgsFile)" Lines="@(CscCommandLineArgs)" Overwrite="true" />
              </Target>
            </Project>
            """);
        var off = CommandLine(corpusProject: ProjectText(analyzer: null), hook, configuration, "off");
        var on = CommandLine(corpusProject: ProjectText(analyzer: analyzers), hook, configuration, "on");
        // The project file the builds run with is the user's one (no Hmm.Analyzers).
        File.WriteAllText(Path.Combine(_project, "Corpus.csproj"), ProjectText(analyzer: null));

        var added = on.ToList();
        foreach (string arg in off)
            if (!added.Remove(arg)) throw new InvalidOperationException($"the SDK's command line with Hmm.Analyzers lacks '{arg}' of the one without: the pair would differ by more than the analyzer");
        string analyzerArg = "/analyzer:" + analyzers;
        if (added.Count != 1 || added[0] != analyzerArg)
            throw new InvalidOperationException($"the SDK's command line with Hmm.Analyzers adds [{string.Join(", ", added)}], not exactly {analyzerArg}");

        File.WriteAllLines(Path.Combine(_dir, "off.rsp"), off.Select(CommandLineBuildBenchmarks.Quote));
        File.WriteAllLines(Path.Combine(_dir, "on.rsp"), on.Select(CommandLineBuildBenchmarks.Quote));
        int sdkAnalyzers = off.Count(a => a.StartsWith("/analyzer:", StringComparison.Ordinal)) - 1;
        Console.WriteLine($"// csc: {_csc}; project: {_project} ({configuration}); corpus: {corpus.Trees.Length} files, {corpus.Lines} lines; "
            + $"{off.Length} arguments, {sdkAnalyzers} SDK analyzer/generator dlls besides Hmm.Generators; on adds {analyzerArg}; compiler server: {CompilerServer}");
        if (CompilerServer)
        {
            // Warm: the server has loaded and jitted the compiler, the SDK's analyzers, the generator and ours.
            for (int i = 0; i < 2; i++) { Compile("off"); Compile("on"); }
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_dir != null && Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
        if (CompilerServer)
        {
            using var stop = Process.Start(new ProcessStartInfo(_dotnet, "build-server shutdown --vbcscompiler") { RedirectStandardOutput = true, UseShellExecute = false });
            stop?.StandardOutput.ReadToEnd();
            stop?.WaitForExit();
        }
    }

    /// <summary>The SDK's csc command line for the project, without Hmm.Analyzers.</summary>
    [Benchmark(Baseline = true)]
    public double ProjectAnalyzersOff() => Compile("off").Cpu;

    /// <summary>The same command line plus <c>/analyzer:Hmm.Analyzers.dll</c>.</summary>
    [Benchmark]
    public double ProjectAnalyzersOn() => Compile("on").Cpu;

    /// <summary>Hmm.Analyzers.dll of this build, or the one <c>HMM_ANALYZER_DLL</c> names.</summary>
    internal static string AnalyzerPath() => Environment.GetEnvironmentVariable("HMM_ANALYZER_DLL") is { Length: > 0 } other
        ? Path.GetFullPath(other)
        : typeof(Hmm.Analyzers.Rules.HmmFlowAnalyzer).Assembly.Location;

    /// <summary>A net10.0 class library as <c>dotnet new classlib</c> writes it, with the runtime and the generator (and optionally the analyzer) as samples/Nouveau takes them.</summary>
    private static string ProjectText(string? analyzer) => $"""
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <TargetFramework>net10.0</TargetFramework>
            <ImplicitUsings>enable</ImplicitUsings>
            <Nullable>enable</Nullable>
            <DefineConstants>$(DefineConstants);FIXED</DefineConstants>
          </PropertyGroup>
          <ItemGroup>
            <Reference Include="{typeof(Hmm.Runtime.Mm.Machine).Assembly.Location}" />
            <Analyzer Include="{AnalyzerCorpus.GeneratorPath()}" />
            {(analyzer == null ? "" : $"<Analyzer Include=\"{analyzer}\" />")}
            <!-- Hmm.Runtime.Locking.SpinLock/Mutex against System.Threading's: as a driver project using the runtime's locks would. -->
            <Using Remove="System.Threading" />
          </ItemGroup>
        </Project>
        """;

    /// <summary>
    /// Restores and runs the project's <c>Compile</c> target with compiler execution skipped, and returns the
    /// arguments the Csc task would have run (<c>@(CscCommandLineArgs)</c>, unquoted, one per item).
    /// </summary>
    private string[] CommandLine(string corpusProject, string hook, string configuration, string side)
    {
        File.WriteAllText(Path.Combine(_project, "Corpus.csproj"), corpusProject);
        string argsFile = Path.Combine(_dir, side + ".args");
        var start = new ProcessStartInfo(_dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = _project };
        foreach (string a in new[] { "msbuild", "-restore", "-nologo", "-v:q", "-t:Compile", "-p:Configuration=" + configuration,
            "-p:ProvideCommandLineArgs=true", "-p:SkipCompilerExecution=true", "-p:CustomAfterMicrosoftCommonTargets=" + hook, "-p:HmmCscArgsFile=" + argsFile })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start " + _dotnet);
        var stderr = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        output += stderr.GetAwaiter().GetResult();
        if (process.ExitCode != 0 || !File.Exists(argsFile))
            throw new InvalidOperationException($"MSBuild did not produce the csc command line ({side}, exit {process.ExitCode}): {output}");
        string[] args = File.ReadAllLines(argsFile).Where(l => l.Length > 0).ToArray();
        if (!args.Any(a => a.StartsWith("/out:", StringComparison.Ordinal))) throw new InvalidOperationException($"no /out: in the csc command line ({side}): {string.Join(' ', args)}");
        return args;
    }

    [GeneratedRegex(@"\b(?:error|warning|info|hidden) HMM\d{4}", RegexOptions.CultureInvariant)]
    private static partial Regex HmmDiagnostic();

    /// <summary>One csc run of a side's response file in the project directory; throws on a failing build or any HMM diagnostic.</summary>
    internal (double Cpu, double Wall) Compile(string side)
    {
        var (cpu, wall, _) = CompileCapture(side, null);
        return (cpu, wall);
    }

    /// <summary>
    /// Writes <c>&lt;name&gt;.rsp</c>: a side's arguments plus <paramref name="extra"/>, or with its <c>/analyzer:</c> of
    /// Hmm.Analyzers replaced when <paramref name="analyzer"/> is given (another build of the same analyzer); returns the name.
    /// </summary>
    internal string WriteVariant(string side, string name, string? extra = null, string? analyzer = null)
    {
        var lines = File.ReadAllLines(Path.Combine(_dir, side + ".rsp")).ToList();
        if (analyzer != null)
        {
            string current = CommandLineBuildBenchmarks.Quote("/analyzer:" + AnalyzerPath());
            int at = lines.IndexOf(current);
            if (at < 0) throw new InvalidOperationException($"{side}.rsp has no {current}");
            lines[at] = CommandLineBuildBenchmarks.Quote("/analyzer:" + Path.GetFullPath(analyzer));
        }
        if (extra != null) lines.Add(extra);
        File.WriteAllLines(Path.Combine(_dir, name + ".rsp"), lines);
        return name;
    }

    /// <summary>One csc run of <c>&lt;rsp&gt;.rsp</c> with extra environment variables; returns csc CPU, wall and its output.</summary>
    internal (double Cpu, double Wall, string Output) CompileCapture(string rsp, IReadOnlyDictionary<string, string>? environment)
    {
        var start = new ProcessStartInfo(_dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = _project };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(_csc);
        if (CompilerServer) start.ArgumentList.Add("/shared");
        start.ArgumentList.Add("@" + Path.Combine(_dir, rsp + ".rsp"));
        if (environment != null) foreach (var (k, v) in environment) start.Environment[k] = v;
        double cpu0 = CommandLineBuildBenchmarks.ChildrenCpuMilliseconds();
        var wall = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start " + _dotnet);
        var stderr = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        wall.Stop();
        output += stderr.GetAwaiter().GetResult();
        var lines = output.Split('\n');
        var bad = lines.Where(l => l.Contains(": error ", StringComparison.Ordinal) || HmmDiagnostic().IsMatch(l)).ToList();
        if (process.ExitCode != 0 || bad.Count != 0)
            throw new InvalidOperationException($"csc ({rsp}) exited {process.ExitCode} with {bad.Count} errors or HMM diagnostics, the first: {bad.FirstOrDefault() ?? output}");
        double cpu = CommandLineBuildBenchmarks.ChildrenCpuMilliseconds() - cpu0;
        int warnings = lines.Count(l => l.Contains(": warning ", StringComparison.Ordinal));
        Console.WriteLine($"// project csc {rsp}: cpu {cpu:F0} ms, wall {wall.Elapsed.TotalMilliseconds:F0} ms, {warnings} warnings; load {LoadAverage()}");
        return (cpu, wall.Elapsed.TotalMilliseconds, output);
    }

    /// <summary>The 1-minute load average (Linux), to print next to every figure on a shared host.</summary>
    internal static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return "?"; }
        catch (UnauthorizedAccessException) { return "?"; }
    }
}

/// <summary>
/// <see cref="ProjectBuildBenchmarks"/>' two command lines handed to the compiler server (<c>csc /shared</c>,
/// VBCSCompiler), <c>dotnet build</c>'s default when shared compilation is on; setup warms the server with each
/// build twice. Wall time is the figure (the op's CPU is the client's). <c>--filter '*ProjectServerBuild*'</c>.
/// </summary>
public class ProjectServerBuildBenchmarks : ProjectBuildBenchmarks
{
    protected override bool CompilerServer => true;
}
