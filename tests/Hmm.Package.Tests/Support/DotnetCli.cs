using System.Diagnostics;
using System.Text;
using NUnit.Framework;

namespace Hmm.Package.Tests.Support;

/// <summary>What one `dotnet` command did: its exit code, everything it printed, and how long it took.</summary>
/// <param name="Command">The command line, for failure messages.</param>
/// <param name="ExitCode">The process exit code (-1 when it was killed at the timeout).</param>
/// <param name="Output">Standard output and standard error, interleaved as they arrived.</param>
/// <param name="Elapsed">Wall time.</param>
public sealed record CliRun(string Command, int ExitCode, string Output, TimeSpan Elapsed)
{
    /// <summary>A one-line-plus-output description for assertion messages.</summary>
    public override string ToString() => $"`{Command}` exited {ExitCode} after {Elapsed.TotalSeconds:F1} s:\n{Output}";
}

/// <summary>
/// Runs the .NET CLI as a user at a terminal would, but in an environment of the caller's choosing:
/// the test host's MSBuild and VSTest variables are dropped (they would make the child build run
/// inside this test run's MSBuild context), and the caller's overrides (DOTNET_CLI_HOME, NUGET_PACKAGES)
/// are applied.
/// </summary>
public static class DotnetCli
{
    /// <summary>Runs `dotnet <paramref name="arguments"/>` in <paramref name="workingDirectory"/> and waits at most <paramref name="timeout"/>.</summary>
    public static CliRun Run(string workingDirectory, IReadOnlyDictionary<string, string>? environment, TimeSpan timeout, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        foreach (string name in start.Environment.Keys.ToArray())
        {
            if (name.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || name.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase))
                start.Environment.Remove(name);
        }
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        // Plain logs (no terminal logger), so that diagnostics are one line each.
        start.Environment["MSBUILDTERMINALLOGGER"] = "off";
        if (environment is not null)
        {
            foreach (var (name, value) in environment) start.Environment[name] = value;
        }

        string command = "dotnet " + string.Join(' ', arguments);
        var output = new StringBuilder();
        var clock = Stopwatch.StartNew();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            lock (output) output.AppendLine($"(killed after {timeout.TotalSeconds:F0} s)");
            return new CliRun(command, -1, output.ToString(), clock.Elapsed);
        }
        process.WaitForExit(); // flush the asynchronous readers
        clock.Stop();
        TestContext.Progress.WriteLine($"[package e2e] {command} → {process.ExitCode} in {clock.Elapsed.TotalSeconds:F1} s");
        lock (output) return new CliRun(command, process.ExitCode, output.ToString(), clock.Elapsed);
    }
}
