using System.Collections.Immutable;
using System.Composition;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Formatting;

namespace Hmm.Analyzers.CodeFixes.Flow;

/// <summary>HMM1013: refuses a non-blockable invalidation before the blocking call (<c>if (!range.Blockable) return false;</c>; a whole-mm start returns <c>Errno.EAGAIN</c>, an end just returns).</summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(BlockableGuardFixer)), Shared]
public sealed class BlockableGuardFixer : CodeFixProvider
{
    private const string Title = "Return false when the range is not blockable";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ["HMM1013"];

    /// <inheritdoc/>
    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        if (root?.FindNode(context.Diagnostics[0].Location.SourceSpan) is not { } node) return;
        var statement = node.AncestorsAndSelf().OfType<StatementSyntax>().FirstOrDefault(s => s.Parent is BlockSyntax);
        var method = node.FirstAncestorOrSelf<MethodDeclarationSyntax>();
        var range = method?.ParameterList.Parameters.FirstOrDefault(p => p.Type?.ToString() is "NotifierRange" or "Hmm.Runtime.Mm.NotifierRange");
        if (statement == null || method == null || range == null) return;
        bool returnsBool = method.ReturnType.ToString() == "bool";
        // A whole-mm invalidate_range_start refuses a non-blockable range with -EAGAIN (the OOM reaper then skips it).
        bool returnsErrno = method.ReturnType.ToString() is "Errno" or "Hmm.Runtime.Errno";
        if (!returnsBool && !returnsErrno && method.ReturnType.ToString() != "void") return;
        context.RegisterCodeFix(CodeAction.Create(Title, ct =>
        {
            var guard = SyntaxFactory.ParseStatement($"if (!{range.Identifier.Text}.Blockable) return{(returnsBool ? " false" : returnsErrno ? " " + method.ReturnType.ToString() + ".EAGAIN" : "")};")
                .WithLeadingTrivia(statement.GetLeadingTrivia()).WithTrailingTrivia(statement.GetTrailingTrivia())
                .WithAdditionalAnnotations(Formatter.Annotation);
            var block = (BlockSyntax)statement.Parent!;
            var newBlock = block.WithStatements(block.Statements.Insert(block.Statements.IndexOf(statement), guard));
            return Task.FromResult(context.Document.WithSyntaxRoot(root.ReplaceNode(block, newBlock)));
        }, equivalenceKey: Title), context.Diagnostics);
    }
}
