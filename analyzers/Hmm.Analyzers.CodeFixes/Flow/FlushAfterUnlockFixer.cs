using System.Collections.Immutable;
using System.Composition;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Hmm.Analyzers.CodeFixes.Flow;

/// <summary>
/// HMM1036, the "while holding U" shape: a flush of a <c>[WaitsForWork]</c> queue made as the last
/// step before the callback lock is dropped moves to just after the drop — the queued work (a
/// deferred mmput whose exit teardown runs the notifiers' release, work that takes U) can then
/// run while we wait. Offered only when the flush is the direct call, it is the last statement
/// before the unlock (the last of a <c>try</c> whose <c>finally</c> unlocks, or the statement right
/// before an unlock in the same block), so no other statement changes order; never inside a
/// callback, where the wait itself is the bug and the repair is a design change.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(FlushAfterUnlockFixer)), Shared]
public sealed class FlushAfterUnlockFixer : CodeFixProvider
{
    private const string Title = "Wait for the work after dropping the lock";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ["HMM1036"];

    /// <inheritdoc/>
    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var diagnostic = context.Diagnostics[0];
        if (diagnostic.GetMessage().Contains("inside a notifier callback")) return;
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        var model = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
        if (root == null || model == null) return;
        var call = root.FindNode(diagnostic.Location.SourceSpan, getInnermostNodeForTie: true).FirstAncestorOrSelf<InvocationExpressionSyntax>();
        if (call?.Parent is not ExpressionStatementSyntax flush || flush.Parent is not BlockSyntax block) return;
        if (model.GetSymbolInfo(call, context.CancellationToken).Symbol is not IMethodSymbol method
            || !method.GetAttributes().Any(a => a.AttributeClass?.Name == "WaitsForWorkAttribute")) return;
        if (Plan(flush, block) is not { } after) return;
        context.RegisterCodeFix(CodeAction.Create(Title, ct => Task.FromResult(context.Document.WithSyntaxRoot(Apply(root, flush, block, after))), equivalenceKey: Title), diagnostic);
    }

    /// <summary>The statement after which the flush goes: the try whose finally unlocks, or the unlock right after it; null when the shape is not this one.</summary>
    private static StatementSyntax? Plan(ExpressionStatementSyntax flush, BlockSyntax block)
    {
        int at = block.Statements.IndexOf(flush);
        if (at + 1 < block.Statements.Count)
            return IsUnlock(block.Statements[at + 1]) ? block.Statements[at + 1] : null;
        if (block.Parent is TryStatementSyntax { Catches.Count: 0, Finally: { } fin } t && t.Block == block && t.Parent is BlockSyntax
            && fin.Block.Statements.Any(IsUnlock)) return t;
        return null;
    }

    private static bool IsUnlock(StatementSyntax s) =>
        s is ExpressionStatementSyntax { Expression: InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax ma } }
        && ma.Name.Identifier.Text is "Unlock" or "ReadUnlock" or "WriteUnlock";

    private static SyntaxNode Apply(SyntaxNode root, ExpressionStatementSyntax flush, BlockSyntax block, StatementSyntax after)
    {
        int at = block.Statements.IndexOf(flush);
        if (after.Parent == block)
        {
            // Lock(); …; Flush(); Unlock();  →  Lock(); …; Unlock(); Flush();  (the unlock was right after the flush)
            var swapped = block.Statements.RemoveAt(at).Insert(at + 1, flush);
            return root.ReplaceNode(block, block.WithStatements(swapped));
        }
        // try { …; Flush(); } finally { Unlock(); }  →  try { … } finally { Unlock(); } Flush();
        // A try left empty is only its finally: its statements run in place.
        var tryStatement = (TryStatementSyntax)after;
        var outer = (BlockSyntax)tryStatement.Parent!;
        var indent = tryStatement.GetLeadingTrivia();
        var newline = tryStatement.GetTrailingTrivia();
        var rest = block.Statements.RemoveAt(at);
        var replacement = rest.Count == 0
            ? tryStatement.Finally!.Block.Statements.Select(s => s.WithLeadingTrivia(indent).WithTrailingTrivia(newline)).ToList()
            : [tryStatement.WithBlock(block.WithStatements(rest))];
        replacement.Add(flush.WithLeadingTrivia(indent).WithTrailingTrivia(newline));
        int index = outer.Statements.IndexOf(tryStatement);
        var newStatements = outer.Statements.RemoveAt(index).InsertRange(index, replacement);
        return root.ReplaceNode(outer, outer.WithStatements(newStatements));
    }
}
