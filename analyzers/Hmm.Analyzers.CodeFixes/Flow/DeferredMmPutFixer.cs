using System.Collections.Immutable;
using System.Composition;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Hmm.Analyzers.CodeFixes.Flow;

/// <summary>
/// HMM1017: a synchronous mmput (<c>AddressSpace.Put</c>) in a callback or under a callback lock
/// becomes the deferred one (<c>PutDeferred</c>, mmput_async), whose teardown runs later on the
/// system workqueue. Offered only where the diagnostic is the Put call itself (not a helper).
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(DeferredMmPutFixer)), Shared]
public sealed class DeferredMmPutFixer : CodeFixProvider
{
    private const string Title = "Use the deferred mm put (mmput_async)";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ["HMM1017"];

    /// <inheritdoc/>
    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        if (root?.FindNode(context.Diagnostics[0].Location.SourceSpan, getInnermostNodeForTie: true) is not { } node) return;
        var call = node.FirstAncestorOrSelf<InvocationExpressionSyntax>();
        if (call?.Expression is not MemberAccessExpressionSyntax { Name.Identifier.Text: "Put" } access || call.ArgumentList.Arguments.Count != 0) return;
        var model = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
        if (model?.GetSymbolInfo(call, context.CancellationToken).Symbol is not IMethodSymbol { ContainingType: { } type }
            || type.ToDisplayString() != "Hmm.Runtime.Mm.AddressSpace") return;
        context.RegisterCodeFix(CodeAction.Create(Title, ct =>
        {
            var renamed = access.WithName(SyntaxFactory.IdentifierName("PutDeferred").WithTriviaFrom(access.Name));
            return Task.FromResult(context.Document.WithSyntaxRoot(root.ReplaceNode(access, renamed)));
        }, equivalenceKey: Title), context.Diagnostics);
    }
}
