using System.Reflection;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.PublicSurface;

/// <summary>
/// Issue 9, cause 4: no public type may share its name with a namespace (CA1724, an error in
/// .editorconfig). A type named like a namespace segment — the old <c>Hmm.Runtime.Mirror.Hmm</c>
/// beside the root namespace <c>Hmm</c> — makes <c>Hmm.X</c> in user code bind to the namespace
/// (CS0234) as soon as a <c>using</c> brings the type into scope.
/// </summary>
public class TypeNameClashTests
{
    private static readonly Assembly[] Shipped = { typeof(Machine).Assembly, typeof(DmirrorDevice).Assembly };

    [Test]
    public void NoPublicTypeIsNamedLikeANamespaceSegment()
    {
        var clashes = Clashes(Shipped, out int checkedTypes, out var segments);
        Assert.That(segments, Does.Contain("Hmm").And.Contain("Runtime").And.Contain("TestHmm"), "the namespaces were found");
        Assert.That(checkedTypes, Is.GreaterThan(50), "the public surface was enumerated");
        Assert.That(clashes, Is.Empty, "public types named like a namespace (CA1724)");
    }

    [Test]
    public void TheCheckFindsAClash()
    {
        // The negative case: this test assembly has one such type on purpose (below).
        var clashes = Clashes(new[] { typeof(TypeNameClashTests).Assembly }, out _, out _);
        Assert.That(clashes, Is.EqualTo(new[] { "Hmm.Samples.Tests.PublicSurface.PublicSurface" }));
    }

    /// <summary>Public types of <paramref name="assemblies"/> whose name (without generic arity) equals a segment of any namespace they declare.</summary>
    private static List<string> Clashes(Assembly[] assemblies, out int checkedTypes, out HashSet<string> segments)
    {
        segments = new HashSet<string>(StringComparer.Ordinal);
        foreach (var asm in assemblies)
            foreach (var t in asm.GetTypes())
                if (t.Namespace is { } ns)
                    foreach (var part in ns.Split('.')) segments.Add(part);
        var clashes = new List<string>();
        checkedTypes = 0;
        foreach (var asm in assemblies)
            foreach (var t in asm.GetExportedTypes())
            {
                checkedTypes++;
                string name = t.IsGenericType ? t.Name[..t.Name.IndexOf('`')] : t.Name;
                if (segments.Contains(name)) clashes.Add(t.FullName!);
            }
        return clashes;
    }
}

/// <summary>Named like the namespace segment above so <see cref="TypeNameClashTests.TheCheckFindsAClash"/> has something to find.</summary>
#pragma warning disable CA1724
public static class PublicSurface
#pragma warning restore CA1724
{
}
