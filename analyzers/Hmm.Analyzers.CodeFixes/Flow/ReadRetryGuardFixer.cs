using System.Collections.Immutable;
using System.Composition;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Formatting;

namespace Hmm.Analyzers.CodeFixes.Flow;

/// <summary>
/// HMM1012: wraps the device-table update in the ReadRetry check of the range's own notifier and
/// sequence (<c>if (!range.Notifier!.ReadRetry(range.NotifierSeq)) { … }</c>). The statement must
/// already run under U; the fix does not choose the driver's lock for it.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(ReadRetryGuardFixer)), Shared]
public sealed class ReadRetryGuardFixer : CodeFixProvider
{
    private const string Title = "Program the device only if ReadRetry reports no collision";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ["HMM1012"];

    /// <inheritdoc/>
    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        var model = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
        if (root?.FindNode(context.Diagnostics[0].Location.SourceSpan) is not { } node || model == null) return;
        var statement = node.AncestorsAndSelf().OfType<StatementSyntax>().FirstOrDefault(s => s.Parent is BlockSyntax);
        if (statement == null) return;
        ExpressionSyntax? range = null;
        foreach (var e in node.DescendantNodesAndSelf().OfType<ExpressionSyntax>())
            if (model.GetTypeInfo(e, context.CancellationToken).Type?.ToDisplayString() == "Hmm.Runtime.Mirror.HmmRange") { range = e; break; }
        if (range == null) return;
        string r = range.ToString();
        context.RegisterCodeFix(CodeAction.Create(Title, ct =>
        {
            var guarded = SyntaxFactory.IfStatement(
                SyntaxFactory.ParseExpression($"!{r}.Notifier!.ReadRetry({r}.NotifierSeq)"),
                SyntaxFactory.Block(statement.WithoutLeadingTrivia())).WithLeadingTrivia(statement.GetLeadingTrivia()).WithAdditionalAnnotations(Formatter.Annotation);
            return Task.FromResult(context.Document.WithSyntaxRoot(root.ReplaceNode(statement, guarded)));
        }, equivalenceKey: Title), context.Diagnostics);
    }
}
