using System.IO.Compression;
using System.Xml.Linq;
using NUnit.Framework;

namespace Hmm.Package.Tests;

/// <summary>
/// What the two packages hold: Hmm.Gen carries the runtime with its docs and the three Roslyn
/// components under analyzers/dotnet/cs, and no dependency (the Roslyn components' own
/// references are the compiler's); Hmm.Gen.Templates is a template package and nothing else.
/// </summary>
public sealed class PackageLayoutTests
{
    private static string[] Entries(string package)
    {
        using ZipArchive zip = ZipFile.OpenRead(package);
        return zip.Entries.Select(e => e.FullName).ToArray();
    }

    private static string Text(string package, string entry)
    {
        using ZipArchive zip = ZipFile.OpenRead(package);
        ZipArchiveEntry? found = zip.GetEntry(entry);
        Assert.That(found, Is.Not.Null, $"{entry} in {Path.GetFileName(package)}");
        using var reader = new StreamReader(found!.Open());
        return reader.ReadToEnd();
    }

    private static XElement Metadata(string package, string nuspec)
    {
        XElement root = XElement.Parse(Text(package, nuspec));
        return root.Elements().Single(e => e.Name.LocalName == "metadata");
    }

    private static XElement? Child(XElement parent, string name) => parent.Elements().SingleOrDefault(e => e.Name.LocalName == name);

    [Test]
    public void HmmGen_HoldsTheRuntimeAndItsDocs_AndTheRoslynComponentsAsAnalyzers()
    {
        string[] entries = Entries(PackedFeed.RuntimePackage);

        Assert.That(entries, Does.Contain("lib/net10.0/Hmm.Runtime.dll"));
        Assert.That(entries, Does.Contain("lib/net10.0/Hmm.Runtime.xml"), "doc XML beside the assembly");
        Assert.That(entries, Does.Contain("analyzers/dotnet/cs/Hmm.Generators.dll"));
        Assert.That(entries, Does.Contain("analyzers/dotnet/cs/Hmm.Analyzers.dll"));
        Assert.That(entries, Does.Contain("analyzers/dotnet/cs/Hmm.Analyzers.CodeFixes.dll"));
        Assert.That(entries, Does.Contain("README.md"));
        Assert.That(entries.Where(e => e.StartsWith("lib/", StringComparison.Ordinal)), Has.None.Contains("Generators").And.None.Contains("Analyzers"),
            "the Roslyn components are not referenced by the consumer's code");
        Assert.That(entries, Has.None.Contains("Microsoft.CodeAnalysis"), "Roslyn itself is the compiler's, never shipped");
    }

    [Test]
    public void HmmGen_Metadata_LicenceReadmeVersion_AndNoDependencies()
    {
        XElement metadata = Metadata(PackedFeed.RuntimePackage, "Hmm.Gen.nuspec");

        Assert.That(Child(metadata, "id")?.Value, Is.EqualTo("Hmm.Gen"));
        Assert.That(Child(metadata, "version")?.Value, Is.EqualTo(PackedFeed.Version));
        XElement? license = Child(metadata, "license");
        Assert.That(license?.Attribute("type")?.Value, Is.EqualTo("expression"));
        Assert.That(license?.Value, Is.EqualTo("MIT"));
        Assert.That(Child(metadata, "readme")?.Value, Is.EqualTo("README.md"));
        Assert.That(metadata.Descendants().Where(e => e.Name.LocalName == "dependency"), Is.Empty,
            "no package dependency: the generator's and analyzers' Roslyn references are PrivateAssets");
    }

    [Test]
    public void HmmGen_SymbolsPackage_HoldsTheRuntimePdb()
    {
        string symbols = Path.ChangeExtension(PackedFeed.RuntimePackage, ".snupkg");

        Assert.That(File.Exists(symbols), Is.True, symbols);
        Assert.That(Entries(symbols), Does.Contain("lib/net10.0/Hmm.Runtime.pdb"));
        Assert.That(Entries(PackedFeed.RuntimePackage), Has.None.EndsWith(".pdb"), "symbols go to the .snupkg, not the package");
    }

    [Test]
    public void Templates_IsATemplatePackage_WithTheDriverTemplate_AtThisVersion()
    {
        XElement metadata = Metadata(PackedFeed.TemplatePackage, "Hmm.Gen.Templates.nuspec");
        string[] entries = Entries(PackedFeed.TemplatePackage);
        string templateJson = Text(PackedFeed.TemplatePackage, "content/hmm-driver/.template.config/template.json");

        Assert.That(Child(metadata, "id")?.Value, Is.EqualTo("Hmm.Gen.Templates"));
        Assert.That(metadata.Descendants().Where(e => e.Name.LocalName == "packageType").Select(e => e.Attribute("name")?.Value), Does.Contain("Template"));
        Assert.That(templateJson, Does.Contain("\"shortName\": \"hmm-driver\""));
        Assert.That(templateJson, Does.Contain($"\"defaultValue\": \"{PackedFeed.Version}\""), "new projects reference the Hmm.Gen packed with the template");
        Assert.That(entries, Does.Contain("content/hmm-driver/MyDriver/GpuDriver.cs"));
        Assert.That(entries, Has.None.StartsWith("lib/"), "a template package carries no assembly");
        Assert.That(entries, Has.None.Contains("/bin/").And.None.Contains("/obj/"), "no build output of the template's projects");
    }
}
