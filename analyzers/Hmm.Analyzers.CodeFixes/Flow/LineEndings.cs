using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Hmm.Analyzers.CodeFixes.Flow;

/// <summary>The document's own line ending, for statements a fix inserts (an elastic one outside a formatted span would stay CRLF).</summary>
internal static class LineEndings
{
    public static SyntaxTrivia Of(SyntaxNode root)
    {
        foreach (var t in root.DescendantTrivia())
            if (t.IsKind(SyntaxKind.EndOfLineTrivia)) return t;
        return SyntaxFactory.ElasticCarriageReturnLineFeed;
    }
}
