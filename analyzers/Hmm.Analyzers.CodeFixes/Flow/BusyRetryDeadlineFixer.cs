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
/// HMM1037: bounds an EBUSY retry loop by time, as test_hmm and nouveau do with
/// HMM_RANGE_DEFAULT_TIMEOUT: a deadline taken before the loop, and each attempt after it
/// returns <c>Errno.EBUSY</c> to the caller. Offered only in a method returning <c>Errno</c> (the
/// caller already handles EBUSY there; a void or bool method would need a decision on how to
/// report giving up), for a loop that sits in a block, and only when leaving from the top of the
/// loop body cannot skip a release: no lock or reference is acquired before the loop unless a
/// <c>finally</c> around the loop releases it.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(BusyRetryDeadlineFixer)), Shared]
public sealed class BusyRetryDeadlineFixer : CodeFixProvider
{
    private const string Title = "Give up with EBUSY after HMM_RANGE_DEFAULT_TIMEOUT";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ["HMM1037"];

    /// <inheritdoc/>
    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        var model = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
        if (root == null || model == null) return;
        var node = root.FindNode(context.Diagnostics[0].Location.SourceSpan, getInnermostNodeForTie: true);
        var loop = node.Ancestors().FirstOrDefault(a => a is WhileStatementSyntax or DoStatementSyntax or ForStatementSyntax
            || a is MemberDeclarationSyntax or LocalFunctionStatementSyntax or AnonymousFunctionExpressionSyntax) as StatementSyntax;
        if (loop is LocalFunctionStatementSyntax || loop?.Parent is not BlockSyntax) return;
        if (loop.FirstAncestorOrSelf<MemberDeclarationSyntax>() is not MethodDeclarationSyntax method
            || model.GetDeclaredSymbol(method, context.CancellationToken) is not { } symbol
            || symbol.ReturnType.ToDisplayString() != "Hmm.Runtime.Errno" || symbol.IsAsync) return;
        if (AcquiresBeforeWithoutFinally(loop, method, model, context.CancellationToken)) return;
        string name = FreeName(model, loop.SpanStart);
        context.RegisterCodeFix(CodeAction.Create(Title, ct => Task.FromResult(context.Document.WithSyntaxRoot(Apply(root, model, loop, name))), equivalenceKey: Title), context.Diagnostics);
    }

    /// <summary>Whether a statement before the loop acquires a lock or reference that no enclosing finally releases (returning early would leak it).</summary>
    private static bool AcquiresBeforeWithoutFinally(StatementSyntax loop, MethodDeclarationSyntax method, SemanticModel model, CancellationToken ct)
    {
        for (SyntaxNode n = loop; n != method; n = n.Parent!)
        {
            if (n.Parent is TryStatementSyntax { Finally: not null } t && t.Block == n) return false;
            if (n is StatementSyntax s && s.Parent is BlockSyntax b)
                foreach (var before in b.Statements.TakeWhile(x => x != s))
                    foreach (var inv in before.DescendantNodesAndSelf().OfType<InvocationExpressionSyntax>())
                        if (model.GetSymbolInfo(inv, ct).Symbol is IMethodSymbol m && m.GetAttributes().Any(a => a.AttributeClass?.Name
                                is "AcquiresAttribute" or "AcquiresSharedAttribute" or "TryAcquiresAttribute" or "AcquiresReferenceAttribute")) return true;
        }
        return false;
    }

    private static string FreeName(SemanticModel model, int position)
    {
        foreach (var name in new[] { "deadline", "busyDeadline", "retryDeadline" })
            if (model.LookupSymbols(position, name: name).IsEmpty) return name;
        return "busyDeadline" + position;
    }

    /// <summary>The shortest name of a type that binds to it at the position (the usings in scope), else its full name.</summary>
    private static string Name(SemanticModel model, int position, string shortName, string fullName)
    {
        foreach (var t in model.LookupNamespacesAndTypes(position, name: shortName))
            if (t.ToDisplayString() == fullName) return shortName;
        return "global::" + fullName;
    }

    private static SyntaxNode Apply(SyntaxNode root, SemanticModel model, StatementSyntax loop, string name)
    {
        var block = (BlockSyntax)loop.Parent!;
        int p = loop.SpanStart;
        string clock = Name(model, p, "Environment", "System.Environment") + ".TickCount64";
        string timeout = Name(model, p, "HmmPfn", "Hmm.Runtime.Mirror.HmmPfn") + ".DefaultTimeoutMs";
        string errno = Name(model, p, "Errno", "Hmm.Runtime.Errno");
        var newline = LineEndings.Of(root);
        var declaration = SyntaxFactory.ParseStatement($"long {name} = {clock} + {timeout};")
            .WithLeadingTrivia(loop.GetLeadingTrivia()).WithTrailingTrivia(newline);
        var check = SyntaxFactory.ParseStatement($"if ({clock} > {name}) return {errno}.EBUSY;")
            .WithTrailingTrivia(newline)
            .WithAdditionalAnnotations(Formatter.Annotation);
        var bounded = loop switch
        {
            WhileStatementSyntax w => (StatementSyntax)w.WithStatement(Prepend(w.Statement, check, newline)),
            DoStatementSyntax d => d.WithStatement(Prepend(d.Statement, check, newline)),
            ForStatementSyntax f => f.WithStatement(Prepend(f.Statement, check, newline)),
            _ => loop,
        };
        int at = block.Statements.IndexOf(loop);
        var statements = block.Statements.RemoveAt(at).InsertRange(at, [declaration, bounded]);
        return root.ReplaceNode(block, block.WithStatements(statements));
    }

    /// <summary>The loop body with the check first: a body spread over lines keeps its layout; a one-line body becomes a formatted block.</summary>
    private static BlockSyntax Prepend(StatementSyntax body, StatementSyntax check, SyntaxTrivia newline)
    {
        if (body is BlockSyntax b && !OnOneLine(b)) return b.WithStatements(b.Statements.Insert(0, check));
        var inner = body switch
        {
            BlockSyntax one => one.Statements.Select(x => x.WithoutTrivia().WithTrailingTrivia(newline)),
            EmptyStatementSyntax => [],
            _ => [body.WithoutTrivia().WithTrailingTrivia(newline)],
        };
        return SyntaxFactory.Block(new[] { check }.Concat(inner))
            .WithTrailingTrivia(body.GetTrailingTrivia())
            .WithAdditionalAnnotations(Formatter.Annotation);
    }

    private static bool OnOneLine(BlockSyntax b) =>
        b.SyntaxTree.GetLineSpan(b.OpenBraceToken.Span).StartLinePosition.Line == b.SyntaxTree.GetLineSpan(b.CloseBraceToken.Span).StartLinePosition.Line;
}
