using System.Diagnostics;
using System.Reflection;
using Hmm.Package.Tests.Support;
using NUnit.Framework;

namespace Hmm.Package.Tests;

/// <summary>
/// Packs Hmm.Gen and Hmm.Gen.Templates once for every test of this assembly, into a local feed
/// under a fresh temporary folder outside the repository. The projects were built in this test
/// assembly's configuration before it (project references), so this is `dotnet pack --no-build`:
/// no rebuild of outputs that other test projects may be loading. Everything a test creates (the
/// template store, the NuGet package folder, the CLI home, the new project) lives in that folder,
/// removed at the end unless HMM_KEEP_PACKAGE_E2E=1.
/// </summary>
[SetUpFixture]
public sealed class PackedFeed
{
    /// <summary>The repository root (this assembly's build-time value).</summary>
    public static string RepositoryRoot { get; private set; } = "";

    /// <summary>The configuration the repository was built in (Release in CI).</summary>
    public static string Configuration { get; private set; } = "";

    /// <summary>The version both packages carry (HmmGenVersion).</summary>
    public static string Version { get; private set; } = "";

    /// <summary>The temporary folder holding everything; outside the repository.</summary>
    public static string WorkRoot { get; private set; } = "";

    /// <summary>The local feed with the packed .nupkg and .snupkg files.</summary>
    public static string Feed { get; private set; } = "";

    /// <summary>Hmm.Gen's package file.</summary>
    public static string RuntimePackage => Path.Combine(Feed, $"Hmm.Gen.{Version}.nupkg");

    /// <summary>Hmm.Gen.Templates' package file.</summary>
    public static string TemplatePackage => Path.Combine(Feed, $"Hmm.Gen.Templates.{Version}.nupkg");

    /// <summary>Wall time of the two packs.</summary>
    public static TimeSpan PackTime { get; private set; }

    private static readonly Stopwatch s_total = new();

    /// <summary>Packs both packages.</summary>
    [OneTimeSetUp]
    public void Pack()
    {
        s_total.Restart();
        var metadata = typeof(PackedFeed).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().ToDictionary(a => a.Key, a => a.Value ?? "");
        RepositoryRoot = metadata["HmmRepositoryRoot"];
        Configuration = metadata["HmmConfiguration"];
        Version = metadata["HmmGenVersion"];
        WorkRoot = Path.Combine(Path.GetTempPath(), "hmm-package-e2e-" + Guid.NewGuid().ToString("N")[..12]);
        Feed = Path.Combine(WorkRoot, "feed");
        Directory.CreateDirectory(Feed);
        Assert.That(Path.GetFullPath(WorkRoot), Does.Not.StartWith(Path.GetFullPath(RepositoryRoot)), "the consumer must live outside the repository");

        var clock = Stopwatch.StartNew();
        foreach (string project in new[] { "runtime/Hmm.Runtime/Hmm.Runtime.csproj", "templates/Hmm.Gen.Templates.csproj" })
        {
            CliRun pack = DotnetCli.Run(RepositoryRoot, null, TimeSpan.FromMinutes(5),
                "pack", project, "-c", Configuration, "--no-build", "-o", Feed);
            Assert.That(pack.ExitCode, Is.Zero, pack.ToString());
        }
        PackTime = clock.Elapsed;
        Assert.That(File.Exists(RuntimePackage), Is.True, RuntimePackage);
        Assert.That(File.Exists(TemplatePackage), Is.True, TemplatePackage);
    }

    /// <summary>Removes the temporary folder and reports the assembly's wall time.</summary>
    [OneTimeTearDown]
    public void Clean()
    {
        TestContext.Progress.WriteLine($"[package e2e] packing {PackTime.TotalSeconds:F1} s, whole package test run {s_total.Elapsed.TotalSeconds:F1} s");
        if (WorkRoot.Length == 0 || Environment.GetEnvironmentVariable("HMM_KEEP_PACKAGE_E2E") == "1") return;
        try { Directory.Delete(WorkRoot, recursive: true); }
        catch (IOException) { /* a child process still holding a file: the temp folder is cleaned by the OS */ }
        catch (UnauthorizedAccessException) { }
    }
}
