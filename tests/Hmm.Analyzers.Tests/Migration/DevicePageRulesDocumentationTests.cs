using System.Runtime.CompilerServices;
using Hmm.Analyzers.Rules;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Migration;

/// <summary>Every device-page rule (HMM1040–1049) is offered by the analyzer, documented at its help link and release-tracked.</summary>
public sealed class DevicePageRulesDocumentationTests
{
    private static string RepositoryRoot([CallerFilePath] string here = "")
        => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here)!, "../../.."));

    [Test]
    public void Every_rule_is_supported_documented_and_tracked()
    {
        string root = RepositoryRoot();
        string unshipped = File.ReadAllText(Path.Combine(root, "analyzers/Hmm.Analyzers/AnalyzerReleases.Unshipped.md"));
        var supported = new HmmFlowAnalyzer().SupportedDiagnostics.Select(d => d.Id).ToList();
        Assert.That(supported, Is.Unique);
        foreach (var rule in DevicePageRules.All)
        {
            Assert.That(rule.Id, Does.Match("^HMM104[0-9]$"));
            Assert.That(supported, Does.Contain(rule.Id));
            Assert.That(rule.HelpLinkUri, Is.EqualTo($"docs/diagnostics/{rule.Id}.md"));
            string page = Path.Combine(root, rule.HelpLinkUri);
            Assert.That(File.Exists(page), Is.True, page);
            Assert.That(File.ReadAllText(page), Does.Contain("## What it catches").And.Contain("## Wrong").And.Contain("## Right").And.Contain("## How to fix"));
            Assert.That(unshipped, Does.Contain(rule.Id + " | " + rule.Category + " | Warning"));
        }
    }
}
