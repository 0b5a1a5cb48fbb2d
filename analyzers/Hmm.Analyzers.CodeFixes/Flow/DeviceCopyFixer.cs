using System.Collections.Immutable;
using System.Composition;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Hmm.Analyzers.CodeFixes.Flow;

/// <summary>
/// HMM1042: a CPU page copy (<c>HighMem.CopyPage(machine, dst, src)</c> = copy_highpage) that
/// touches a device-private page becomes a copy by the device's engine
/// (<c>engine.Copy([new PageCopy(src, dst)])</c>), which reaches device memory. Offered only when
/// the reported argument is one of CopyPage's own and exactly one copy engine is in scope: a
/// <c>CopyEngine</c> local, parameter or member, else exactly one <c>SimDevice</c> (its
/// <c>Copy</c>). <c>HighMem.Map</c> (kmap) gets no fix: what the code does with the mapping is not
/// a copy.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(DeviceCopyFixer)), Shared]
public sealed class DeviceCopyFixer : CodeFixProvider
{
    private const string Title = "Copy with the device's copy engine";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ["HMM1042"];

    /// <inheritdoc/>
    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        var model = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
        if (root == null || model == null) return;
        var argument = root.FindNode(context.Diagnostics[0].Location.SourceSpan, getInnermostNodeForTie: true).FirstAncestorOrSelf<ArgumentSyntax>();
        if (argument?.Parent?.Parent is not InvocationExpressionSyntax { Parent: ExpressionStatementSyntax statement } call) return;
        if (model.GetSymbolInfo(call, context.CancellationToken).Symbol is not IMethodSymbol { Name: "CopyPage" } m
            || m.ContainingType.ToDisplayString() != "Hmm.Runtime.Memory.HighMem") return;
        var args = call.ArgumentList.Arguments;
        if (args.Count is < 3 or > 4 || args.Any(a => a.NameColon != null)) return;
        if (Engine(model, call, context.CancellationToken) is not { } engine) return;
        string order = args.Count == 4 ? ", " + args[3].Expression : "";
        string text = $"{engine}.Copy([new PageCopy({args[2].Expression}, {args[1].Expression}{order})]);";
        context.RegisterCodeFix(CodeAction.Create(Title, ct =>
        {
            var copy = SyntaxFactory.ParseStatement(text).WithTriviaFrom(statement);
            return Task.FromResult(context.Document.WithSyntaxRoot(root.ReplaceNode(statement, copy)));
        }, equivalenceKey: Title), context.Diagnostics);
    }

    /// <summary>The expression naming the one copy engine in scope at the call, or null when there is none or more than one.</summary>
    private static string? Engine(SemanticModel model, SyntaxNode at, CancellationToken ct)
    {
        var method = model.GetEnclosingSymbol(at.SpanStart, ct);
        bool isStatic = method?.IsStatic == true;
        var engines = new List<string>();
        var devices = new List<string>();
        foreach (var s in model.LookupSymbols(at.SpanStart))
        {
            if (isStatic && !s.IsStatic && s is IFieldSymbol or IPropertySymbol) continue;
            var type = s switch
            {
                ILocalSymbol l => l.Type,
                IParameterSymbol p => p.Type,
                IFieldSymbol f => f.Type,
                IPropertySymbol pr => pr.Type,
                _ => null,
            };
            switch (type?.ToDisplayString())
            {
                case "Hmm.Runtime.Devices.CopyEngine": engines.Add(s.Name); break;
                case "Hmm.Runtime.Devices.SimDevice": devices.Add(s.Name + ".Copy"); break;
            }
        }
        if (engines.Count > 0) return engines.Count == 1 ? engines[0] : null;
        return devices.Count == 1 ? devices[0] : null;
    }
}
