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
/// HMM1040 (MIG-R06): when the failing copy (the diagnostic's additional location) follows the
/// statement that exposed its destination (<c>dst[i] = MigratePfn.FromPfn(d);</c>, same block,
/// nothing in between reassigning <c>i</c> or <c>d</c>), the failure branch clears that entry
/// (<c>dst[i] = 0;</c>) so migrate_vma_pages leaves the address unmigrated. An ignored status
/// becomes <c>if (!copy.TryCopy(…)) dst[i] = 0;</c>; an existing <c>if (!copy.TryCopy(…)) …</c>
/// without else clears first, then does what it did. Other shapes (destination written after
/// the failure, batch copies, copies in a helper) get no fix: which entry to clear is not local.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(ClearFailedDestinationFixer)), Shared]
public sealed class ClearFailedDestinationFixer : CodeFixProvider
{
    private const string Title = "Clear the dst entry when its copy fails";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ["HMM1040"];

    /// <inheritdoc/>
    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var diagnostic = context.Diagnostics[0];
        if (diagnostic.AdditionalLocations.Count != 1) return;
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        if (root == null || diagnostic.AdditionalLocations[0].SourceTree != root.SyntaxTree) return;
        var copy = root.FindNode(diagnostic.AdditionalLocations[0].SourceSpan, getInnermostNodeForTie: true).FirstAncestorOrSelf<InvocationExpressionSyntax>();
        if (copy?.Expression is not MemberAccessExpressionSyntax { Name.Identifier.Text: "TryCopy" }) return;
        if (Plan(copy) is not { } plan) return;
        context.RegisterCodeFix(CodeAction.Create(Title, ct => Task.FromResult(context.Document.WithSyntaxRoot(Apply(root, copy, plan))), equivalenceKey: Title), diagnostic);
    }

    /// <summary>The copy's statement and the element expression of the entry it must clear; null when the shape is not the local one.</summary>
    private static (StatementSyntax Statement, ElementAccessExpressionSyntax Entry)? Plan(InvocationExpressionSyntax copy)
    {
        StatementSyntax? statement = copy.Parent switch
        {
            ExpressionStatementSyntax s => s,
            AssignmentExpressionSyntax { Left: IdentifierNameSyntax { Identifier.Text: "_" }, Parent: ExpressionStatementSyntax s } => s,
            PrefixUnaryExpressionSyntax { RawKind: (int)SyntaxKind.LogicalNotExpression, Parent: IfStatementSyntax { Else: null } i } => i,
            _ => null,
        };
        if (statement?.Parent is not BlockSyntax block) return null;
        var copied = new HashSet<string>(copy.ArgumentList.DescendantNodes().OfType<IdentifierNameSyntax>().Select(n => n.Identifier.Text), StringComparer.Ordinal);
        int at = block.Statements.IndexOf(statement);
        for (int k = at - 1; k >= 0; k--)
        {
            if (block.Statements[k] is not ExpressionStatementSyntax { Expression: AssignmentExpressionSyntax { RawKind: (int)SyntaxKind.SimpleAssignmentExpression } store }
                || store.Left is not ElementAccessExpressionSyntax entry || entry.ArgumentList.Arguments.Count != 1
                || store.Right is not InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Name.Identifier.Text: "FromPfn" } } fromPfn
                || fromPfn.ArgumentList.Arguments.Count != 1 || fromPfn.ArgumentList.Arguments[0].Expression is not IdentifierNameSyntax page
                || !copied.Contains(page.Identifier.Text)) continue;
            if (!IsPlain(entry.Expression) || !IsPlain(entry.ArgumentList.Arguments[0].Expression)) return null;
            // Everything the entry names (and the page) must be the same when the copy fails.
            var names = new HashSet<string>(entry.DescendantNodesAndSelf().OfType<IdentifierNameSyntax>().Select(n => n.Identifier.Text), StringComparer.Ordinal) { page.Identifier.Text };
            for (int j = k + 1; j < at; j++)
                if (Writes(block.Statements[j], names)) return null;
            return (statement, entry);
        }
        return null;
    }

    /// <summary>A local, a parameter, a member chain or a constant: reading it twice reads the same entry.</summary>
    private static bool IsPlain(ExpressionSyntax e) => e is IdentifierNameSyntax or LiteralExpressionSyntax
        || e is MemberAccessExpressionSyntax { Expression: var inner } && IsPlain(inner) || e is ThisExpressionSyntax;

    private static bool Writes(SyntaxNode node, HashSet<string> names)
    {
        foreach (var n in node.DescendantNodesAndSelf())
        {
            ExpressionSyntax? target = n switch
            {
                AssignmentExpressionSyntax a => a.Left,
                PostfixUnaryExpressionSyntax p => p.Operand,
                PrefixUnaryExpressionSyntax { RawKind: (int)SyntaxKind.PreIncrementExpression or (int)SyntaxKind.PreDecrementExpression } p => p.Operand,
                ArgumentSyntax { RefKindKeyword.RawKind: (int)SyntaxKind.OutKeyword or (int)SyntaxKind.RefKeyword } arg => arg.Expression,
                _ => null,
            };
            if (target is IdentifierNameSyntax id && names.Contains(id.Identifier.Text)) return true;
            if (target is DeclarationExpressionSyntax { Designation: SingleVariableDesignationSyntax v } && names.Contains(v.Identifier.Text)) return true;
        }
        return false;
    }

    private static SyntaxNode Apply(SyntaxNode root, InvocationExpressionSyntax copy, (StatementSyntax Statement, ElementAccessExpressionSyntax Entry) plan)
    {
        var newline = LineEndings.Of(root);
        var clear = SyntaxFactory.ParseStatement(plan.Entry.WithoutTrivia() + " = 0;");
        var line = clear.WithTrailingTrivia(newline).WithAdditionalAnnotations(Formatter.Annotation);
        StatementSyntax replacement = plan.Statement switch
        {
            IfStatementSyntax { Statement: BlockSyntax b } i => i.WithStatement(b.WithStatements(b.Statements.Insert(0, line))),
            IfStatementSyntax i => i.WithStatement(SyntaxFactory.Block(line,
                    i.Statement.WithoutTrivia().WithTrailingTrivia(newline)).WithTrailingTrivia(i.Statement.GetTrailingTrivia()))
                .WithAdditionalAnnotations(Formatter.Annotation),
            _ => SyntaxFactory.IfStatement(SyntaxFactory.PrefixUnaryExpression(SyntaxKind.LogicalNotExpression, copy.WithoutTrivia()), clear.WithAdditionalAnnotations(Formatter.Annotation))
                .WithTriviaFrom(plan.Statement).WithAdditionalAnnotations(Formatter.Annotation),
        };
        return root.ReplaceNode(plan.Statement, replacement);
    }
}
