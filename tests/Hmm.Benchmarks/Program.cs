using BenchmarkDotNet.Running;

namespace Hmm.Benchmarks;

/// <summary>Entry point: <c>dotnet run -c Release --project tests/Hmm.Benchmarks -- --filter '*Fault*' --job short</c>.</summary>
public static class Program
{
    /// <summary>Runs the benchmarks selected on the command line (BenchmarkSwitcher syntax).</summary>
    /// <remarks>
    /// <c>--analyzer-profile [rounds]</c> instead prints where the analyzer's time goes on the synthetic corpus;
    /// <c>--csc-build [rounds]</c> runs the command-line build pair alternately (see <see cref="CommandLineBuildBenchmarks"/>);
    /// <c>--project-build [rounds] [server]</c> the SDK-generated project build pair (see <see cref="ProjectBuildBenchmarks"/>);
    /// <c>--analyzer-swap rounds dll</c> the cold on side with this build's analyzer against another build of it;
    /// <c>--jit-profile [rounds]</c> where a cold csc's on-side time goes: JIT per module (see <see cref="ColdJitProfile"/>).
    /// </remarks>
    public static void Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "--analyzer-profile") AnalyzerProfile.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3);
        else if (args.Length > 0 && args[0] == "--csc-build") CommandLineBuildBenchmarks.RunAlternating(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3);
        else if (args.Length > 0 && args[0] == "--project-build") ProjectBuildBenchmarks.RunAlternating(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3, args.Length > 2 && args[2] == "server");
        else if (args.Length > 2 && args[0] == "--analyzer-swap") ProjectBuildBenchmarks.RunAnalyzerSwap(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture), args[2]);
        else if (args.Length > 0 && args[0] == "--jit-profile") ColdJitProfile.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1);
        else BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
