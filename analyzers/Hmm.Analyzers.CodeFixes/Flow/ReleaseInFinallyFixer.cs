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
/// HMM1004/1020/1022/1023/1025/1041/1050: moves the release that follows the acquisition (unlock,
/// MigrateVma.Finalize, Put, Dispose) into a <c>finally</c> around the statements between them,
/// and drops the early-path copies of that release the finally now covers.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(ReleaseInFinallyFixer)), Shared]
public sealed class ReleaseInFinallyFixer : CodeFixProvider
{
    private const string Title = "Release in a finally";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ["HMM1004", "HMM1020", "HMM1022", "HMM1023", "HMM1025", "HMM1041", "HMM1050"];

    /// <inheritdoc/>
    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        if (root?.FindNode(context.Diagnostics[0].Location.SourceSpan) is not { } node) return;
        if (Plan(node) is null) return;
        context.RegisterCodeFix(CodeAction.Create(Title, ct => Apply(context.Document, root, node), equivalenceKey: Title), context.Diagnostics);
    }

    private sealed class FixPlan(BlockSyntax block, int first, int release)
    {
        public BlockSyntax Block { get; } = block;
        public int First { get; } = first;
        public int Release { get; } = release;
    }

    /// <summary>The block, the first statement to protect and the release statement, or null when the shape is not recognised.</summary>
    private static FixPlan? Plan(SyntaxNode node)
    {
        var acquire = node.AncestorsAndSelf().OfType<StatementSyntax>().FirstOrDefault(s => s.Parent is BlockSyntax);
        if (acquire?.Parent is not BlockSyntax block) return null;
        var target = Target(node);
        if (target == null) return null;
        int at = block.Statements.IndexOf(acquire);
        int first = at + 1;
        // var e = Setup(args); if (e != Errno.Ok) return e;  — the guard stays outside the try.
        if (acquire is LocalDeclarationStatementSyntax decl && first < block.Statements.Count && block.Statements[first] is IfStatementSyntax guard
            && guard.Condition.DescendantNodes().OfType<IdentifierNameSyntax>().Any(i => decl.Declaration.Variables.Any(v => v.Identifier.Text == i.Identifier.Text)))
            first++;
        for (int i = block.Statements.Count - 1; i >= first; i--)
            if (IsRelease(block.Statements[i], target)) return new FixPlan(block, first, i);
        return null;
    }

    /// <summary>The text naming what is acquired: the receiver of Lock/TryGet, or the argument of Setup/Make.</summary>
    private static string? Target(SyntaxNode node)
    {
        var inv = node.DescendantNodesAndSelf().OfType<InvocationExpressionSyntax>().FirstOrDefault()
                  ?? node.AncestorsAndSelf().OfType<InvocationExpressionSyntax>().FirstOrDefault();
        if (inv == null) return null;
        var args = inv.ArgumentList.Arguments;
        foreach (var a in args)
            if (a.RefKindKeyword.IsKind(SyntaxKind.OutKeyword) && a.Expression is DeclarationExpressionSyntax { Designation: SingleVariableDesignationSyntax v }) return v.Identifier.Text;
        if (inv.Expression is MemberAccessExpressionSyntax ma)
        {
            string name = ma.Name.Identifier.Text;
            if (name is "Setup") return args.Count > 0 ? args[0].Expression.ToString() : null;
            // var peer = DevPagemap.Get(machine, pfn): the reference lives in the variable (released by peer.Put()).
            if (name is "Get" && inv.Parent is EqualsValueClauseSyntax { Parent: VariableDeclaratorSyntax declared }) return declared.Identifier.Text;
            return ma.Expression.ToString();
        }
        return null;
    }

    private static bool IsRelease(StatementSyntax s, string target) =>
        s is ExpressionStatementSyntax { Expression: InvocationExpressionSyntax inv } && inv.Expression is MemberAccessExpressionSyntax ma
        && (ma.Name.Identifier.Text is "Unlock" or "ReadUnlock" or "WriteUnlock" or "Put" or "Dispose" && Named(ma.Expression) == target
            || ma.Name.Identifier.Text == "Finalize" && inv.ArgumentList.Arguments.Count == 1 && inv.ArgumentList.Arguments[0].Expression.ToString() == target);

    /// <summary>The text of a receiver, looking through the null-forgiving <c>n!</c> an out variable of MmuNotifier.Get is put with.</summary>
    private static string Named(ExpressionSyntax e) =>
        (e is PostfixUnaryExpressionSyntax p && p.IsKind(SyntaxKind.SuppressNullableWarningExpression) ? p.Operand : e).ToString();

    private static Task<Document> Apply(Document document, SyntaxNode root, SyntaxNode node)
    {
        var plan = Plan(node)!;
        var statements = plan.Block.Statements;
        var release = statements[plan.Release];
        string target = Target(node)!;
        var protectedStatements = new List<StatementSyntax>();
        for (int i = plan.First; i < plan.Release; i++)
        {
            var s = statements[i];
            // Early paths released themselves; the finally now does it once for every path.
            var copies = s.DescendantNodes().OfType<ExpressionStatementSyntax>().Where(e => IsRelease(e, target)).ToList();
            protectedStatements.Add(copies.Count == 0 ? s : s.RemoveNodes(copies, SyntaxRemoveOptions.KeepNoTrivia)!);
        }
        var tryStatement = SyntaxFactory.TryStatement(
            SyntaxFactory.Block(protectedStatements),
            default,
            SyntaxFactory.FinallyClause(SyntaxFactory.Block(release.WithoutTrivia()))).WithAdditionalAnnotations(Formatter.Annotation);
        var newStatements = statements.Take(plan.First).Append(tryStatement).Concat(statements.Skip(plan.Release + 1));
        var newBlock = plan.Block.WithStatements(SyntaxFactory.List(newStatements));
        return Task.FromResult(document.WithSyntaxRoot(root.ReplaceNode(plan.Block, newBlock)));
    }
}
