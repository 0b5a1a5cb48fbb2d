using System.Text.RegularExpressions;
using Hmm.Package.Tests.Support;
using NUnit.Framework;

namespace Hmm.Package.Tests;

/// <summary>
/// Acceptance 2 of issue 15, as a user does it: `dotnet new install` the packed template into an
/// isolated template store, `dotnet new hmm-driver -n Something` outside the repository, restore
/// from the local feed plus the machine's usual NuGet source into an empty package folder (so a
/// Hmm.Gen cached from another run is never used), build with warnings as errors, run the program,
/// run its tests, then add a file with known bugs and read the HMM diagnostics.
/// The tests run in order on one generated project (one install, one restore, one build).
/// </summary>
public sealed partial class TemplateEndToEndTests
{
    // Generous: in CI the consumer's restore + build (about 2 min alone) competes with the other test projects for 2 cores.
    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(10);
    private const string Name = "Something";

    private string _project = "";
    private Dictionary<string, string> _environment = new();
    private CliRun _build = null!;

    [OneTimeSetUp]
    public void CreateAndBuild()
    {
        string work = PackedFeed.WorkRoot;
        string hive = Path.Combine(work, "template-hive");
        string packages = Path.Combine(work, "nuget-packages");
        string consumer = Path.Combine(work, "consumer");
        Directory.CreateDirectory(consumer);
        string upstream = UpstreamSources(consumer);

        // The user's template store, CLI home and package cache stay untouched.
        _environment = new Dictionary<string, string>
        {
            ["DOTNET_CLI_HOME"] = Path.Combine(work, "cli-home"),
            ["NUGET_PACKAGES"] = packages,
        };

        CliRun install = Dotnet(work, "new", "install", PackedFeed.TemplatePackage, "--debug:custom-hive", hive);
        Assert.That(install.ExitCode, Is.Zero, install.ToString());
        Assert.That(install.Output, Does.Contain("hmm-driver"));

        CliRun create = Dotnet(consumer, "new", "hmm-driver", "-n", Name, "--debug:custom-hive", hive);
        Assert.That(create.ExitCode, Is.Zero, create.ToString());
        _project = Path.Combine(consumer, Name);
        Assert.That(File.Exists(Path.Combine(_project, Name + ".slnx")), Is.True, create.ToString());

        File.WriteAllText(Path.Combine(_project, "NuGet.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="hmm-gen-local" value="{PackedFeed.Feed}" />
            {upstream}  </packageSources>
            </configuration>
            """);

        _build = Dotnet(_project, "build", Name + ".slnx", "-c", "Release", "-warnaserror", "-p:EmitCompilerGeneratedFiles=true");
    }

    /// <summary>The package sources this machine restores from (user and machine NuGet.config), as NuGet.config lines.</summary>
    private static string UpstreamSources(string directory)
    {
        CliRun list = DotnetCli.Run(directory, null, StepTimeout, "nuget", "list", "source", "--format", "short");
        var lines = new System.Text.StringBuilder();
        int n = 0;
        foreach (Match m in EnabledSource().Matches(list.Output))
        {
            lines.Append("    <add key=\"upstream").Append(n++).Append("\" value=\"").Append(m.Groups[1].Value.Trim()).AppendLine("\" />");
        }
        if (n == 0) lines.AppendLine("    <add key=\"nuget.org\" value=\"https://api.nuget.org/v3/index.json\" />");
        return lines.ToString();
    }

    [GeneratedRegex(@"^E\S*\s+(\S+)\s*$", RegexOptions.Multiline)]
    private static partial Regex EnabledSource();

    private CliRun Dotnet(string directory, params string[] arguments) => DotnetCli.Run(directory, _environment, StepTimeout, arguments);

    [Test, Order(1)]
    public void Build_AgainstThePackedHmmGen_GeneratesTheDriver_WithNoWarning()
    {
        Assert.That(_build.ExitCode, Is.Zero, _build.ToString());
        Assert.That(_build.Output, Does.Not.Match(@":\s+warning\s+[A-Z]+[0-9]+"), "zero warnings");
        string restored = Path.Combine(_environment["NUGET_PACKAGES"], "hmm.gen", PackedFeed.Version);
        Assert.That(Directory.Exists(restored), Is.True, "Hmm.Gen restored from the local feed into the empty package folder");

        string generated = Path.Combine(_project, Name, "obj", "Release", "net10.0", "generated", "Hmm.Generators", "Hmm.Generators.DriverGenerator");
        Assert.That(Directory.Exists(generated), Is.True, "the packaged generator ran: " + generated);
        string[] files = Directory.GetFiles(generated).Select(Path.GetFileName).ToArray()!;
        Assert.That(files, Is.SupersetOf(new[]
        {
            $"{Name}.GpuDriver.Mirror.g.cs", $"{Name}.GpuDriver.DeviceMemory.g.cs",
            $"{Name}.GpuDriver.Migration.g.cs", $"{Name}.GpuDriver.FaultBuffer.g.cs",
        }));
        Assert.That(File.ReadAllText(Path.Combine(generated, $"{Name}.GpuDriver.Mirror.g.cs")), Does.Contain("partial class GpuDriver"));
    }

    [Test, Order(2)]
    public void Program_RunsTheDriverOnASimulatedMachine_AndExitsZero()
    {
        Assume.That(_build.ExitCode, Is.Zero, "the build failed");

        CliRun run = Dotnet(_project, "run", "--no-build", "-c", "Release", "--project", $"{Name}.App");

        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        Assert.That(run.Output, Does.Contain("data verified"), run.ToString());
        Assert.That(run.Output, Does.Match(@"device faults\s+[1-9][0-9]*"), "the device faulted and the driver serviced it");
        Assert.That(run.Output, Does.Match(@"pages migrated to device\s+[1-9][0-9]*"));
    }

    [Test, Order(3)]
    public void GeneratedTests_Pass()
    {
        Assume.That(_build.ExitCode, Is.Zero, "the build failed");

        CliRun test = Dotnet(_project, "test", $"{Name}.Tests/{Name}.Tests.csproj", "--no-build", "-c", "Release");

        Assert.That(test.ExitCode, Is.Zero, test.ToString());
        Assert.That(test.Output, Does.Match(@"Passed:\s+[1-9]"), test.ToString());
        Assert.That(test.Output, Does.Match(@"Failed:\s+0"), test.ToString());
    }

    [Test, Order(4)]
    public void KnownBugs_AreReportedWithTheirHmmDiagnostics()
    {
        Assume.That(_build.ExitCode, Is.Zero, "the build failed");
        string bug = Path.Combine(_project, Name, "Bugs.cs");
        File.WriteAllText(bug, $$"""
            using Hmm.Dsl;

            namespace {{Name}};

            // HMM0001: a driver class must be partial (the generator cannot add its half).
            [HmmDriver("broken")]
            public sealed class BrokenDriver
            {
            }

            public sealed partial class GpuDriver
            {
                // HMM1001: a [GuardedBy] field read without its lock.
                public long RacyPagesProgrammed => _pagesProgrammed;
            }
            """);
        try
        {
            CliRun build = Dotnet(_project, "build", Path.Combine(Name, Name + ".csproj"), "-c", "Release", "--no-restore");

            Assert.That(build.ExitCode, Is.Not.Zero, "HMM0001 is an error");
            Assert.That(build.Output, Does.Match(@"Bugs\.cs\(7,\d+\): error HMM0001: .*BrokenDriver"), build.ToString());
            Assert.That(build.Output, Does.Match(@"Bugs\.cs\(14,\d+\): warning HMM1001: .*_pagesProgrammed"), build.ToString());
            Assert.That(build.Output, Does.Not.Contain("GpuDriver.cs("), "the template's own driver stays clean");
        }
        finally
        {
            File.Delete(bug);
        }
    }
}
