using System.Runtime.CompilerServices;
using Hmm.Analyzers.DriverShape;
using NUnit.Framework;

namespace Hmm.Analyzers.Tests.DriverShape;

/// <summary>Every HMM0xxx rule is documented (its help link is an existing page) and release-tracked.</summary>
public sealed class DriverShapeDocumentationTests
{
    private static string RepositoryRoot([CallerFilePath] string here = "")
        => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here)!, "../../.."));

    [Test]
    public void EveryRule_HasAHelpPage_AndAReleaseEntry()
    {
        string root = RepositoryRoot();
        string unshipped = File.ReadAllText(Path.Combine(root, "analyzers/Hmm.Analyzers/AnalyzerReleases.Unshipped.md"));
        var rules = new DriverShapeAnalyzer().SupportedDiagnostics;
        Assert.That(rules.Select(r => r.Id), Is.Unique);
        foreach (var rule in rules)
        {
            Assert.That(rule.Id, Does.Match("^HMM0[0-9]{3}$"));
            Assert.That(rule.Category, Is.EqualTo(DriverShapeDescriptors.Category));
            Assert.That(rule.HelpLinkUri, Is.EqualTo($"docs/diagnostics/{rule.Id}.md"));
            string page = Path.Combine(root, rule.HelpLinkUri);
            Assert.That(File.Exists(page), Is.True, page);
            Assert.That(File.ReadAllText(page), Does.Contain("## Wrong").And.Contain("## Right").And.Contain("## Fix"));
            Assert.That(unshipped, Does.Contain(rule.Id + " | " + DriverShapeDescriptors.Category));
        }
    }
}
