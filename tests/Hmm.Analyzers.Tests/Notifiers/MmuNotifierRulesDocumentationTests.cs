using System.Runtime.CompilerServices;
using Hmm.Analyzers.Rules;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.Notifiers;

/// <summary>Every whole-mm notifier rule (HMM1050–1059) is offered by the analyzer, documented at its help link and release-tracked.</summary>
public sealed class MmuNotifierRulesDocumentationTests
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
        Assert.That(MmuNotifierRules.All, Has.Length.EqualTo(4));
        foreach (var rule in MmuNotifierRules.All)
        {
            Assert.That(rule.Id, Does.Match("^HMM105[0-9]$"));
            Assert.That(supported, Does.Contain(rule.Id));
            Assert.That(rule.HelpLinkUri, Is.EqualTo($"docs/diagnostics/{rule.Id}.md"));
            string page = Path.Combine(root, rule.HelpLinkUri);
            Assert.That(File.Exists(page), Is.True, page);
            Assert.That(File.ReadAllText(page), Does.Contain("## What it catches").And.Contain("## The kernel failure it prevents")
                .And.Contain("## Wrong").And.Contain("## Right").And.Contain("## How to fix"));
            Assert.That(unshipped, Does.Contain(rule.Id + " | " + rule.Category + " | Warning"));
        }
    }

    [Test]
    public void Reference_kind_maps_to_the_leak_rule()
        => Assert.That(HmmRules.ForReference(MmuNotifierRules.Kind), Is.SameAs(MmuNotifierRules.ReferenceLeaked));
}
