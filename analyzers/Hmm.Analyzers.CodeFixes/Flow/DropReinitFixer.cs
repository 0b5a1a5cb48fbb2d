using System.Collections.Immutable;
using System.Composition;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Hmm.Analyzers.CodeFixes.Flow;

/// <summary>
/// HMM1043 (MIG-R10): removes a second <c>InitPage(d)</c> when an earlier <c>X.InitPage(d)</c> of the
/// same pagemap and variable runs on every path to it — a statement before it in the same block
/// or an enclosing one, with nothing in between assigning <c>d</c>. The page is then still
/// initialised and held by this code, so using it as it is is what zone_device_page_init's
/// contract asks. Not offered when the earlier initialisation is conditional or in a helper (an
/// allocator that initialises): whether every path initialised is not visible locally, and the
/// repair there is a fresh page, which depends on the driver's allocator.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(DropReinitFixer)), Shared]
public sealed class DropReinitFixer : CodeFixProvider
{
    private const string Title = "Keep the page initialised earlier (remove the second InitPage)";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ["HMM1043"];

    /// <inheritdoc/>
    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        if (root == null) return;
        var call = root.FindNode(context.Diagnostics[0].Location.SourceSpan, getInnermostNodeForTie: true).FirstAncestorOrSelf<InvocationExpressionSyntax>();
        if (call?.Parent is not ExpressionStatementSyntax { Parent: BlockSyntax } statement || Init(statement) is not { } key) return;
        if (!InitialisedOnEveryPath(statement, key)) return;
        context.RegisterCodeFix(CodeAction.Create(Title, ct =>
            Task.FromResult(context.Document.WithSyntaxRoot(root.RemoveNode(statement, SyntaxRemoveOptions.KeepNoTrivia)!)), equivalenceKey: Title), context.Diagnostics);
    }

    /// <summary>"receiver|pfn" of a statement <c>receiver.InitPage(pfn)</c>, or null.</summary>
    private static string? Init(StatementSyntax s) =>
        s is ExpressionStatementSyntax { Expression: InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Name.Identifier.Text: "InitPage" } ma } inv }
        && inv.ArgumentList.Arguments.Count == 1 && inv.ArgumentList.Arguments[0].Expression is IdentifierNameSyntax pfn
            ? ma.Expression + "|" + pfn.Identifier.Text
            : null;

    /// <summary>Whether an equal initialisation precedes the statement on every path without the pfn variable changing in between.</summary>
    private static bool InitialisedOnEveryPath(StatementSyntax statement, string key)
    {
        string pfn = key.Substring(key.IndexOf('|') + 1);
        for (SyntaxNode n = statement; n.Parent is not (null or MemberDeclarationSyntax or AnonymousFunctionExpressionSyntax or LocalFunctionStatementSyntax); n = n.Parent)
        {
            // A loop that changes the variable may re-initialise a new page on a later iteration.
            if (n is WhileStatementSyntax or DoStatementSyntax or ForStatementSyntax or CommonForEachStatementSyntax && Writes(n, pfn)) return false;
            if (n is not StatementSyntax s || s.Parent is not BlockSyntax block) continue;
            int at = block.Statements.IndexOf(s);
            for (int k = at - 1; k >= 0; k--)
            {
                var before = block.Statements[k];
                if (Init(before) == key) return true;
                if (Writes(before, pfn)) return false;
            }
        }
        return false;
    }

    private static bool Writes(SyntaxNode node, string name)
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
            if (target is IdentifierNameSyntax id && id.Identifier.Text == name) return true;
        }
        return false;
    }
}
