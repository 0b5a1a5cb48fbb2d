using System.Runtime.CompilerServices;

namespace Hmm.Generators.Tests.Support;

/// <summary>The test project's source directory: generator inputs and snapshots live beside the tests.</summary>
internal static class TestSources
{
    public static string ProjectDirectory { get; } = Locate();

    private static string Locate([CallerFilePath] string path = "") => Path.GetDirectoryName(Path.GetDirectoryName(path)!)!;

    /// <summary>The text of Inputs/<paramref name="name"/>.cs.</summary>
    public static string Input(string name) => File.ReadAllText(Path.Combine(ProjectDirectory, "Inputs", name + ".cs"));

    /// <summary>Whether snapshots are rewritten instead of compared (HMM_ACCEPT=1).</summary>
    public static bool Accept => Environment.GetEnvironmentVariable("HMM_ACCEPT") == "1";
}
