using System.Collections;
using System.Reflection;
using Hmm.Generators.Models;
using Hmm.Generators.Tests.Support;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using NUnit.Framework;

namespace Hmm.Generators.Tests.Generation;

/// <summary>
/// The pipeline stays cached: an edit that does not change a driver's shape leaves every
/// tracked step Cached or Unchanged, and the models hold no Roslyn symbols, syntax or compilations.
/// </summary>
public sealed class IncrementalTests
{
    private static readonly string[] TrackedSteps = [TrackingNames.Parse, TrackingNames.Drivers, TrackingNames.Emit];

    private static (GeneratorDriver Driver, CSharpCompilation Compilation) FirstRun(params string[] sources)
    {
        var compilation = GeneratorHarness.Compile(sources);
        var driver = GeneratorHarness.Driver().RunGenerators(compilation);
        return (driver, compilation);
    }

    private static void AssertAllCachedOrUnchanged(GeneratorDriver driver)
    {
        var steps = driver.GetRunResult().Results.Single().TrackedSteps;
        foreach (var name in TrackedSteps)
        {
            Assert.That(steps.ContainsKey(name), Is.True, $"step {name} not tracked");
            foreach (var step in steps[name])
                foreach (var (_, reason) in step.Outputs)
                    Assert.That(reason, Is.EqualTo(IncrementalStepRunReason.Cached).Or.EqualTo(IncrementalStepRunReason.Unchanged), $"step {name}");
        }
    }

    [Test]
    public void EditingAnUnrelatedFile_LeavesEveryStepCachedOrUnchanged()
    {
        var (driver, compilation) = FirstRun(TestSources.Input("FaultBufferGpu"), "namespace Other; public class Unrelated { public int X; }");
        var old = compilation.SyntaxTrees.Single(t => t.FilePath == "Input1.cs");
        var edited = compilation.ReplaceSyntaxTree(old, CSharpSyntaxTree.ParseText("namespace Other; public class Unrelated { public int X; public int Y; }", GeneratorHarness.ParseOptions, path: "Input1.cs"));

        driver = driver.RunGenerators(edited);

        AssertAllCachedOrUnchanged(driver);
    }

    [Test]
    public void EditingACallbackBody_WithoutChangingTheShape_LeavesEveryStepCachedOrUnchanged()
    {
        string source = TestSources.Input("FaultBufferGpu");
        var (driver, compilation) = FirstRun(source);
        string body = source.Replace("=> Device.Copy.Copy(copies);", "{ Device.Copy.Copy(copies); _ = copies.Length; }");
        Assert.That(body, Is.Not.EqualTo(source));
        var edited = compilation.ReplaceSyntaxTree(compilation.SyntaxTrees.Single(t => t.FilePath == "Input0.cs"),
            CSharpSyntaxTree.ParseText(body, GeneratorHarness.ParseOptions, path: "Input0.cs"));

        driver = driver.RunGenerators(edited);

        var steps = driver.GetRunResult().Results.Single().TrackedSteps;
        // The FAWMN transform re-runs for the edited file, but yields an equal model ...
        Assert.That(steps[TrackingNames.Parse].SelectMany(s => s.Outputs).Select(o => o.Reason), Is.All.EqualTo(IncrementalStepRunReason.Unchanged).Or.EqualTo(IncrementalStepRunReason.Cached));
        AssertAllCachedOrUnchanged(driver);
    }

    [Test]
    public void EditingTheSharedMemorysFile_ReachesTheDriverThatNamesIt()
    {
        const string memory = "namespace S; [DeviceMemory(DevicePageKind.Private)] public sealed partial class Mem { }";
        const string driver = """
            namespace S;
            [HmmDriver("f", Memory = nameof(M))]
            public sealed partial class F { public Mem M { get; } = new(); [CopyPages] void C(ReadOnlySpan<PageCopy> c) { } }
            """;
        var (gen, compilation) = FirstRun(memory, driver);
        static string Migration(GeneratorDriver d) => d.GetRunResult().Results.Single().GeneratedSources.Single(g => g.HintName == "S.F.Migration.g.cs").SourceText.ToString();
        Assert.That(Migration(gen), Does.Contain("MigrateSelect.DevicePrivate"));

        // Only the memory's file changes (Private → Coherent): the driver's migration must follow.
        var edited = compilation.ReplaceSyntaxTree(compilation.SyntaxTrees.Single(t => t.FilePath == "Input0.cs"),
            CSharpSyntaxTree.ParseText(memory.Replace("Private", "Coherent"), GeneratorHarness.ParseOptions, path: "Input0.cs"));
        gen = gen.RunGenerators(edited);

        Assert.That(Migration(gen), Does.Contain("MigrateSelect.DeviceCoherent"));
        Assert.That(Migration(gen), Does.Not.Contain("MigrateSelect.DevicePrivate"));

        // An edit of the memory's file that does not change it leaves every step cached.
        var again = edited.ReplaceSyntaxTree(edited.SyntaxTrees.Single(t => t.FilePath == "Input0.cs"),
            CSharpSyntaxTree.ParseText(memory.Replace("Private", "Coherent") + " // edited", GeneratorHarness.ParseOptions, path: "Input0.cs"));
        gen = gen.RunGenerators(again);
        AssertAllCachedOrUnchanged(gen);
    }

    [Test]
    public void ChangingTheShape_RegeneratesTheDriver()
    {
        string source = TestSources.Input("FaultBufferGpu");
        var (driver, compilation) = FirstRun(source);
        var edited = compilation.ReplaceSyntaxTree(compilation.SyntaxTrees.Single(t => t.FilePath == "Input0.cs"),
            CSharpSyntaxTree.ParseText(source.Replace("BatchSize = 64", "BatchSize = 128"), GeneratorHarness.ParseOptions, path: "Input0.cs"));

        driver = driver.RunGenerators(edited);

        var emit = driver.GetRunResult().Results.Single().TrackedSteps[TrackingNames.Emit];
        Assert.That(emit.SelectMany(s => s.Outputs).Select(o => o.Reason), Has.Some.EqualTo(IncrementalStepRunReason.Modified));
    }

    [TestCase("MirrorOnly")]
    [TestCase("FaultBufferGpu")]
    [TestCase("P2pExporter")]
    public void Models_HoldNoRoslynObjects(string input)
    {
        var (driver, _) = FirstRun(TestSources.Input(input));
        var outputs = driver.GetRunResult().Results.Single().TrackedSteps[TrackingNames.Drivers].SelectMany(s => s.Outputs).Select(o => o.Value).ToList();
        Assert.That(outputs, Has.Count.EqualTo(1));
        Assert.That(outputs[0], Is.InstanceOf<DriverModel>());
        var offenders = new List<string>();
        Walk(outputs[0], "model", offenders, new HashSet<object>(ReferenceEqualityComparer.Instance));
        Assert.That(offenders, Is.Empty);
    }

    private static void Walk(object? value, string path, List<string> offenders, HashSet<object> seen)
    {
        if (value is null || value is string || value.GetType().IsPrimitive || value.GetType().IsEnum) return;
        var type = value.GetType();
        if (type.Assembly == typeof(Compilation).Assembly || type.Assembly == typeof(CSharpCompilation).Assembly
            || value is ISymbol or SyntaxNode or Location or Compilation or SyntaxTree)
        {
            offenders.Add($"{path}: {type.FullName}");
            return;
        }
        if (!type.IsValueType && !seen.Add(value)) return;
        if (value is IEnumerable items)
        {
            int i = 0;
            foreach (var item in items) Walk(item, $"{path}[{i++}]", offenders, seen);
        }
        foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            Walk(field.GetValue(value), $"{path}.{field.Name}", offenders, seen);
    }
}
