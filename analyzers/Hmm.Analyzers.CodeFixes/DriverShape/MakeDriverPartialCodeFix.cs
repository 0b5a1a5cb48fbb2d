using System.Collections.Immutable;
using System.Composition;
using Hmm.Analyzers.DriverShape;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Hmm.Analyzers.CodeFixes.DriverShape;

/// <summary>HMM0001: adds <c>partial</c> to the driver class declaration (last modifier, as C# requires).</summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(MakeDriverPartialCodeFix)), Shared]
public sealed class MakeDriverPartialCodeFix : CodeFixProvider
{
    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = [DriverShapeDescriptors.NotPartialId];

    /// <inheritdoc/>
    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        if (root?.FindNode(context.Span) is not { } node || node.FirstAncestorOrSelf<ClassDeclarationSyntax>() is not { } declaration) return;
        context.RegisterCodeFix(
            CodeAction.Create(
                "Make the driver class partial",
                _ => Task.FromResult(context.Document.WithSyntaxRoot(root.ReplaceNode(declaration, MakePartial(declaration)))),
                equivalenceKey: nameof(MakeDriverPartialCodeFix)),
            context.Diagnostics);
    }

    private static ClassDeclarationSyntax MakePartial(ClassDeclarationSyntax declaration)
    {
        if (declaration.Modifiers.Count == 0)
        {
            // "class C" → "partial class C", keeping the leading trivia (doc comments, attributes' line) on the new first token.
            var keyword = declaration.Keyword;
            var partial = SyntaxFactory.Token(keyword.LeadingTrivia, SyntaxKind.PartialKeyword, SyntaxFactory.TriviaList(SyntaxFactory.Space));
            return declaration.WithKeyword(keyword.WithLeadingTrivia()).WithModifiers(SyntaxFactory.TokenList(partial));
        }
        var token = SyntaxFactory.Token(SyntaxKind.PartialKeyword).WithTrailingTrivia(SyntaxFactory.Space);
        return declaration.WithModifiers(declaration.Modifiers.Add(token));
    }
}
