using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Hmm.Benchmarks;

/// <summary>
/// Issue 10 target: the cost of generating 200 drivers in one compilation, as a ratio to
/// compiling the same 200 driver sources with the generator off (parse + bind + all diagnostics,
/// the work a build does). The generator is the built Hmm.Generators.dll, loaded as the compiler
/// would load an analyzer.
/// </summary>
[MemoryDiagnoser]
public class GenerationBenchmarks
{
    private const int Drivers = 200;
    private SyntaxTree[] _trees = null!;
    private MetadataReference[] _references = null!;
    private ISourceGenerator _generator = null!;
    private CSharpParseOptions _parse = null!;

    /// <summary>200 drivers of four shapes (mirror, devmem, GPU with fault buffer, range monitor).</summary>
    [GlobalSetup]
    public void Setup()
    {
        _parse = new CSharpParseOptions(LanguageVersion.Latest);
        _references = [.. Basic.Reference.Assemblies.Net100.References.All, MetadataReference.CreateFromFile(typeof(Hmm.Runtime.Mm.Machine).Assembly.Location)];
        var trees = new List<SyntaxTree> { CSharpSyntaxTree.ParseText("global using System; global using Hmm.Dsl; global using Hmm.Runtime; global using Hmm.Runtime.DeviceMemory; global using Hmm.Runtime.Devices; global using Hmm.Runtime.Locking; global using Hmm.Runtime.Mirror; global using Hmm.Runtime.Mm;", _parse) };
        for (int i = 0; i < Drivers; i++) trees.Add(CSharpSyntaxTree.ParseText(Driver(i), _parse, path: $"Driver{i}.cs"));
        _trees = [.. trees];
        var assembly = Assembly.LoadFrom(GeneratorPath());
        var generator = (IIncrementalGenerator)Activator.CreateInstance(assembly.GetType("Hmm.Generators.DriverGenerator", throwOnError: true)!)!;
        _generator = generator.AsSourceGenerator();
        if (WithGenerator() != 0 || WithoutGenerator() != 0) throw new InvalidOperationException("the 200 drivers do not compile cleanly");
    }

    private static string GeneratorPath([CallerFilePath] string here = "")
        => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here)!, "../../generators/Hmm.Generators/bin/Release/netstandard2.0/Hmm.Generators.dll"));

    private static string Driver(int i)
    {
        var s = new StringBuilder();
        s.Append("namespace Drivers").Append(i).Append(";\n");
        switch (i % 4)
        {
            case 0:
                s.Append("[HmmDriver(\"m").Append(i).Append("\", UpdateLock = nameof(_u))] public sealed partial class D { private readonly KernelMutex _u = new(\"u\"); private long _n;\n")
                 .Append("[OnInvalidate] private void I(in NotifierRange r) => _n++; [OnMirrorFault] private void M(HmmRange r, ReadOnlySpan<ulong> p) => _n += p.Length; }\n");
                break;
            case 1:
                s.Append("[HmmDriver(\"d").Append(i).Append("\")][DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20)] public sealed partial class D {\n")
                 .Append("[CopyPages] private void C(ReadOnlySpan<PageCopy> c) => Device.Copy.Copy(c); [OnPageFree] private void F(ulong pfn) { } }\n");
                break;
            case 2:
                s.Append("[HmmDriver(\"g").Append(i).Append("\")][DeviceMemory(DevicePageKind.Private)][FaultBuffer(BatchSize = 64)] public sealed partial class D {\n")
                 .Append("[FaultPolicy] private FaultAction P(in FaultRange f) => f.Atomic ? FaultAction.Exclusive : FaultAction.MapInPlace;\n")
                 .Append("[CopyPages] private void C(ReadOnlySpan<PageCopy> c) => Device.Copy.Copy(c); }\n");
                break;
            default:
                s.Append("[HmmDriver(\"r").Append(i).Append("\", Sync = MirrorSync.RangeMonitor)] public sealed partial class D { }\n");
                break;
        }
        return s.ToString();
    }

    private CSharpCompilation Compilation()
        => CSharpCompilation.Create("Drivers", _trees, _references, new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));

    /// <summary>
    /// Baseline: the 200 sources compiled without the generator. Their callbacks use generated
    /// members (Device), so errors are expected; the binder still does all its work. Returns 0.
    /// </summary>
    [Benchmark(Baseline = true)]
    public int WithoutGenerator()
    {
        _ = Compilation().GetDiagnostics();
        return 0;
    }

    /// <summary>The generator runs over the 200 drivers, then the output compilation is fully diagnosed. Returns its error count (0).</summary>
    [Benchmark]
    public int WithGenerator()
    {
        var driver = CSharpGeneratorDriver.Create([_generator], parseOptions: _parse);
        driver.RunGeneratorsAndUpdateCompilation(Compilation(), out var output, out _);
        return output.GetDiagnostics().Count(d => d.Severity == DiagnosticSeverity.Error);
    }
}
