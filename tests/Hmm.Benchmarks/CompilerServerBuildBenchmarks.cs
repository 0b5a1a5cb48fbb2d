namespace Hmm.Benchmarks;

/// <summary>
/// Issue 11 acceptance 5 as <c>dotnet build</c> runs it by default: the same two csc builds as
/// <see cref="CommandLineBuildBenchmarks"/> (one response-file line apart: <c>/analyzer:Hmm.Analyzers.dll</c>),
/// handed to the compiler server (<c>csc /shared</c>, VBCSCompiler), which keeps the compiler, the DSL
/// generator and the analyzers loaded and jitted between builds. Setup runs each build twice first, so
/// both sides are measured on a warm server; cleanup shuts the server down.
/// </summary>
/// <remarks>
/// Wall time is the figure here: the op's returned CPU time is the client's only, since the server is not
/// a child of this process. Run with <c>--filter '*CompilerServerBuild*'</c> and no <c>--inProcess</c>.
/// </remarks>
public class CompilerServerBuildBenchmarks : CommandLineBuildBenchmarks
{
    protected override bool CompilerServer => true;
}
