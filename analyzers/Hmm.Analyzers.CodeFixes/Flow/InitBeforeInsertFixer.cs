using System.Collections.Immutable;
using System.Composition;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Hmm.Analyzers.CodeFixes.Flow;

/// <summary>
/// HMM1035, late initialisation: moves the store of a field the notifier callback reads in front
/// of the statement that inserts the notifier (the diagnostic's additional location). Offered
/// only when both statements are in the same block and the store reads no local declared
/// between them (moving it would not compile or would change its value).
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(InitBeforeInsertFixer)), Shared]
public sealed class InitBeforeInsertFixer : CodeFixProvider
{
    private const string Title = "Initialise the field before inserting the notifier";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ["HMM1035"];

    /// <inheritdoc/>
    public override FixAllProvider? GetFixAllProvider() => null;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var diagnostic = context.Diagnostics[0];
        if (diagnostic.AdditionalLocations.Count != 1) return;
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        if (root == null) return;
        var store = root.FindNode(diagnostic.Location.SourceSpan, getInnermostNodeForTie: true).FirstAncestorOrSelf<ExpressionStatementSyntax>();
        var insert = root.FindNode(diagnostic.AdditionalLocations[0].SourceSpan, getInnermostNodeForTie: true);
        if (store?.Parent is not BlockSyntax block || store.Expression is not AssignmentExpressionSyntax) return;
        StatementSyntax? anchor = null;
        for (SyntaxNode? n = insert; n != null; n = n.Parent)
            if (n is StatementSyntax s && s.Parent == block) { anchor = s; break; }
        if (anchor == null) return;
        int from = block.Statements.IndexOf(anchor), to = block.Statements.IndexOf(store);
        if (from < 0 || to <= from) return;
        var model = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
        if (model == null) return;
        var flow = model.AnalyzeDataFlow(store);
        if (flow == null || !flow.Succeeded) return;
        for (int i = from; i < to; i++)
            foreach (var declared in model.AnalyzeDataFlow(block.Statements[i])?.VariablesDeclared ?? [])
                if (flow.ReadInside.Contains(declared, SymbolEqualityComparer.Default)) return;
        context.RegisterCodeFix(CodeAction.Create(Title, ct =>
        {
            var moved = store.WithLeadingTrivia(anchor.GetLeadingTrivia());
            var statements = block.Statements.RemoveAt(to).Insert(from, moved);
            return Task.FromResult(context.Document.WithSyntaxRoot(root.ReplaceNode(block, block.WithStatements(statements))));
        }, equivalenceKey: Title), diagnostic);
    }
}
