using BenchmarkDotNet.Running;

namespace Hmm.Benchmarks;

/// <summary>Entry point: <c>dotnet run -c Release --project tests/Hmm.Benchmarks -- --filter '*Fault*' --job short</c>.</summary>
public static class Program
{
    /// <summary>Runs the benchmarks selected on the command line (BenchmarkSwitcher syntax).</summary>
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
