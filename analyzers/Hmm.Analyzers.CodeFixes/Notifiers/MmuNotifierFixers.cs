using System.Collections.Immutable;
using System.Composition;
using Hmm.Analyzers.CodeFixes.Flow;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Formatting;

namespace Hmm.Analyzers.CodeFixes.Notifiers;

/// <summary>What the whole-mm notifier fixers share: the runtime's names, and how a statement joins a method body.</summary>
internal static class NotifierSyntax
{
    public const string MmuNotifier = "Hmm.Runtime.Notifiers.MmuNotifier";
    public const string Machine = "Hmm.Runtime.Mm.Machine";

    /// <summary>The shortest name of a type that binds to it at the position (the usings in scope), else its full name.</summary>
    public static string TypeName(SemanticModel model, int position, string fullName)
    {
        string shortName = fullName.Substring(fullName.LastIndexOf('.') + 1);
        foreach (var t in model.LookupNamespacesAndTypes(position, name: shortName))
            if (t.ToDisplayString() == fullName) return shortName;
        return "global::" + fullName;
    }

    /// <summary>Whether <paramref name="m"/> is declared by the runtime type <paramref name="typeName"/>.</summary>
    public static bool DeclaredBy(IMethodSymbol? m, string typeName) => m?.ContainingType?.ToDisplayString() == typeName;

    /// <summary>
    /// The method with <paramref name="added"/> as its last statement: a block body gains it; an
    /// expression body of a void method becomes a block of that expression then the statement.
    /// Null when the body cannot take it (no body, an expression body returning a value).
    /// </summary>
    public static MethodDeclarationSyntax? Append(MethodDeclarationSyntax method, StatementSyntax added, bool returnsVoid)
    {
        if (method.Body is { } body)
        {
            // A final return (DisposeAsync's ValueTask) stays last.
            int at = body.Statements.Count > 0 && body.Statements[body.Statements.Count - 1] is ReturnStatementSyntax ? body.Statements.Count - 1 : body.Statements.Count;
            return method.WithBody(body.WithStatements(body.Statements.Insert(at, added.WithAdditionalAnnotations(Formatter.Annotation))))
                .WithAdditionalAnnotations(Formatter.Annotation);
        }
        if (method.ExpressionBody is not { } arrow || !returnsVoid) return null;
        var block = SyntaxFactory.Block(SyntaxFactory.ExpressionStatement(arrow.Expression.WithoutTrivia()), added);
        return method.WithExpressionBody(null).WithSemicolonToken(default).WithBody(block)
            .WithTrailingTrivia(method.GetTrailingTrivia())
            .WithAdditionalAnnotations(Formatter.Annotation);
    }

    /// <summary>The receiver text of <c>x.Put()</c>, <c>x!.Put()</c> or <c>x?.Put()</c>, or null.</summary>
    public static ExpressionSyntax? PutReceiver(StatementSyntax s) => s switch
    {
        ExpressionStatementSyntax { Expression: InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Name.Identifier.Text: "Put" } ma, ArgumentList.Arguments.Count: 0 } } => Bare(ma.Expression),
        ExpressionStatementSyntax { Expression: ConditionalAccessExpressionSyntax { WhenNotNull: InvocationExpressionSyntax { Expression: MemberBindingExpressionSyntax { Name.Identifier.Text: "Put" }, ArgumentList.Arguments.Count: 0 } } ca } => Bare(ca.Expression),
        _ => null,
    };

    /// <summary>Looks through the null-forgiving operator and parentheses.</summary>
    public static ExpressionSyntax Bare(ExpressionSyntax e)
    {
        while (true)
            switch (e)
            {
                case PostfixUnaryExpressionSyntax p when p.IsKind(SyntaxKind.SuppressNullableWarningExpression): e = p.Operand; break;
                case ParenthesizedExpressionSyntax par: e = par.Expression; break;
                default: return e;
            }
    }
}

/// <summary>
/// HMM1052: adds <c>MmuNotifier.Synchronize(machine)</c> (mmu_notifier_synchronize) as the last
/// step of the type's unload path. Offered only when the repair is unique: the type declares
/// exactly one Dispose / DisposeAsync / [ModuleExit] method, with a body here, and exactly one
/// <c>Machine</c> is in reach (a parameter of that method, else one field or property of the type).
/// A type with no unload path gets no fix: adding one (IDisposable, a module exit) is a design decision.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(SynchronizeOnUnloadFixer)), Shared]
public sealed class SynchronizeOnUnloadFixer : CodeFixProvider
{
    private const string Title = "Drain the deferred notifier frees on unload (mmu_notifier_synchronize)";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ["HMM1052"];

    /// <inheritdoc/>
    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        var model = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
        if (root == null || model == null) return;
        var node = root.FindNode(context.Diagnostics[0].Location.SourceSpan, getInnermostNodeForTie: true);
        if (node.FirstAncestorOrSelf<TypeDeclarationSyntax>() is not { } typeSyntax
            || model.GetDeclaredSymbol(typeSyntax, context.CancellationToken) is not INamedTypeSymbol type) return;
        IMethodSymbol? exit = null;
        foreach (var member in type.GetMembers())
            if (member is IMethodSymbol m && (m.Name is "Dispose" or "DisposeAsync" && m.Parameters.Length == 0
                    || m.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == "Hmm.Dsl.ModuleExitAttribute")))
            {
                if (exit != null) return;   // two unload paths: which one unloads is the driver's choice
                exit = m;
            }
        if (exit is not { DeclaringSyntaxReferences.Length: 1 }
            || exit.DeclaringSyntaxReferences[0].GetSyntax(context.CancellationToken) is not MethodDeclarationSyntax method
            || method.SyntaxTree != root.SyntaxTree) return;
        if (MachineIn(type, exit) is not { } machine) return;
        var call = SyntaxFactory.ParseStatement($"{NotifierSyntax.TypeName(model, method.SpanStart, NotifierSyntax.MmuNotifier)}.Synchronize({machine});")
            .WithTrailingTrivia(LineEndings.Of(root));
        if (NotifierSyntax.Append(method, call, exit.ReturnsVoid) is not { } fixedMethod) return;
        context.RegisterCodeFix(CodeAction.Create(Title,
            ct => Task.FromResult(context.Document.WithSyntaxRoot(root.ReplaceNode(method, fixedMethod))), equivalenceKey: Title), context.Diagnostics);
    }

    /// <summary>The one Machine the unload method reaches: its parameter, else the type's one field or property.</summary>
    private static string? MachineIn(INamedTypeSymbol type, IMethodSymbol exit)
    {
        string? found = null;
        foreach (var p in exit.Parameters)
            if (p.Type.ToDisplayString() == NotifierSyntax.Machine)
            {
                if (found != null) return null;
                found = p.Name;
            }
        if (found != null) return found;
        foreach (var member in type.GetMembers())
        {
            var t = member switch
            {
                IFieldSymbol { IsImplicitlyDeclared: false } f => f.Type,
                IPropertySymbol p => p.Type,
                _ => null,
            };
            if (t?.ToDisplayString() != NotifierSyntax.Machine || (exit.IsStatic && !member.IsStatic)) continue;
            if (found != null) return null;   // two machines: which one the notifiers live on is not visible here
            found = member.Name;
        }
        return found;
    }
}

/// <summary>
/// HMM1053: moves the cleanup statement out of the get/put ops' <c>Release</c> override into its
/// <c>FreeNotifier</c> (free_notifier runs once after the last put; release only if the mm exits
/// first). Offered only when the diagnostic is the cleanup call itself (a Dispose, or a release of
/// another reference kind) as a whole statement of Release, reading none of Release's parameters
/// or locals; FreeNotifier gains it as its last statement, or is created. A helper reached from
/// Release gets no fix: it may also stop device access, which must stay in release.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(CleanupToFreeNotifierFixer)), Shared]
public sealed class CleanupToFreeNotifierFixer : CodeFixProvider
{
    private const string Title = "Move the cleanup into FreeNotifier";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ["HMM1053"];

    /// <inheritdoc/>
    public override FixAllProvider? GetFixAllProvider() => null;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        var model = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
        if (root == null || model == null) return;
        var node = root.FindNode(context.Diagnostics[0].Location.SourceSpan, getInnermostNodeForTie: true);
        if (node.FirstAncestorOrSelf<InvocationExpressionSyntax>() is not { } call
            || call.FirstAncestorOrSelf<MethodDeclarationSyntax>() is not { Identifier.Text: "Release" } release
            || release.Parent is not ClassDeclarationSyntax typeSyntax
            || model.GetSymbolInfo(call, context.CancellationToken).Symbol is not IMethodSymbol callee
            || !IsCleanup(callee)) return;
        StatementSyntax moved;
        if (release.Body != null)
        {
            if (call.Parent is not ExpressionStatementSyntax s || s.Parent != release.Body) return;
            moved = s;
        }
        else if (release.ExpressionBody?.Expression == call) moved = SyntaxFactory.ExpressionStatement(call.WithoutTrivia());
        else return;
        var flow = model.AnalyzeDataFlow(call);
        if (flow == null || !flow.Succeeded || model.GetDeclaredSymbol(release, context.CancellationToken) is not { } releaseSymbol) return;
        foreach (var read in flow.ReadInside.Concat(flow.WrittenInside))
            if (read is IParameterSymbol { IsThis: false } or ILocalSymbol && SymbolEqualityComparer.Default.Equals(read.ContainingSymbol, releaseSymbol)) return;
        if (model.GetDeclaredSymbol(typeSyntax, context.CancellationToken) is not INamedTypeSymbol type) return;
        MethodDeclarationSyntax? free = null;
        foreach (var member in type.GetMembers("FreeNotifier"))
            if (member is IMethodSymbol { IsOverride: true } m)
            {
                if (m.DeclaringSyntaxReferences.Length != 1 || m.DeclaringSyntaxReferences[0].GetSyntax(context.CancellationToken) is not MethodDeclarationSyntax f
                    || f.Parent != typeSyntax) return;
                free = f;
            }
        var eol = LineEndings.Of(root);
        var statement = moved.WithoutTrivia().WithTrailingTrivia(eol);
        MethodDeclarationSyntax newFree;
        if (free != null)
        {
            if (NotifierSyntax.Append(free, statement, returnsVoid: true) is not { } appended) return;
            newFree = appended;
        }
        else
        {
            string notifier = NotifierSyntax.TypeName(model, release.SpanStart, NotifierSyntax.MmuNotifier);
            newFree = ((MethodDeclarationSyntax)SyntaxFactory.ParseMemberDeclaration($"public override void FreeNotifier({notifier} subscription) {{ }}")!)
                .WithBody(SyntaxFactory.Block(statement))
                .WithLeadingTrivia(release.GetLeadingTrivia())
                .WithTrailingTrivia(eol)
                .WithAdditionalAnnotations(Formatter.Annotation);
        }
        context.RegisterCodeFix(CodeAction.Create(Title, ct =>
        {
            MethodDeclarationSyntax newRelease = release.Body != null
                ? release.WithBody(release.Body.WithStatements(release.Body.Statements.Remove(moved)))
                : release.WithExpressionBody(null).WithSemicolonToken(default)
                    .WithBody(SyntaxFactory.Block()).WithTrailingTrivia(release.GetTrailingTrivia()).WithAdditionalAnnotations(Formatter.Annotation);
            var members = new List<MemberDeclarationSyntax>();
            foreach (var m in typeSyntax.Members)
            {
                if (m == release)
                {
                    members.Add(newRelease);
                    if (free == null) members.Add(newFree);
                }
                else members.Add(m == free ? newFree : m);
            }
            return Task.FromResult(context.Document.WithSyntaxRoot(root.ReplaceNode(typeSyntax, typeSyntax.WithMembers(SyntaxFactory.List(members)))));
        }, equivalenceKey: Title), context.Diagnostics);
    }

    /// <summary>A Dispose, or a [ReleasesReference] of another kind than the notifier's own put — not a helper that reaches one.</summary>
    private static bool IsCleanup(IMethodSymbol m)
    {
        if (m.Name is "Dispose" or "DisposeAsync" && m.Parameters.Length == 0) return true;
        foreach (var a in m.OriginalDefinition.GetAttributes())
            if (a.AttributeClass?.ToDisplayString() == "Hmm.Dsl.ReleasesReferenceAttribute" && a.ConstructorArguments.Length > 0
                && a.ConstructorArguments[0].Value is string kind && kind != "mmu-notifier") return true;
        return false;
    }
}

/// <summary>
/// HMM1051, a use after the put: moves the put (a direct <c>MmuNotifier.Put</c> statement) past
/// the last statement of the same block that still uses the notifier. When that statement is a
/// <c>return</c> of a value, the value is read into a local first (the docs' "read what you need
/// first"). Offered only when nothing on the way leaves the block early (a return, throw, break,
/// continue, goto), assigns the notifier, or puts it again; a second put (a put without a get) gets
/// no fix — which of the two is wrong is the driver's logic.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(PutAfterUseFixer)), Shared]
public sealed class PutAfterUseFixer : CodeFixProvider
{
    private const string Title = "Put the notifier after its last use";

    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ["HMM1051"];

    /// <inheritdoc/>
    public override FixAllProvider? GetFixAllProvider() => null;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        var model = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
        if (root == null || model == null) return;
        var use = root.FindNode(context.Diagnostics[0].Location.SourceSpan, getInnermostNodeForTie: true);
        var useStatement = use.AncestorsAndSelf().OfType<StatementSyntax>().FirstOrDefault(s => s.Parent is BlockSyntax);
        if (useStatement?.Parent is not BlockSyntax block) return;
        int useAt = block.Statements.IndexOf(useStatement);
        // The nearest put statement before the use, in the same block, of a notifier the use mentions.
        int putAt = -1;
        ISymbol? notifier = null;
        for (int i = useAt - 1; i >= 0 && putAt < 0; i--)
        {
            if (NotifierSyntax.PutReceiver(block.Statements[i]) is not { } receiver
                || model.GetSymbolInfo(receiver, context.CancellationToken).Symbol is not { } symbol
                || !IsNotifierPut(model, block.Statements[i], context.CancellationToken)
                || !Mentions(model, use, symbol, context.CancellationToken)) continue;
            putAt = i;
            notifier = symbol;
        }
        if (notifier == null) return;
        // The use must not itself be a put, and the last user of the notifier in the block bounds the move.
        if (use.FirstAncestorOrSelf<InvocationExpressionSyntax>() is { } inv && use.Span.Contains(inv.Expression.Span) && IsPutCall(model, inv, context.CancellationToken)) return;
        int last = useAt;
        for (int i = useAt + 1; i < block.Statements.Count; i++)
            if (Mentions(model, block.Statements[i], notifier, context.CancellationToken)) last = i;
        for (int i = putAt + 1; i <= last; i++)
        {
            var s = block.Statements[i];
            bool isFinalReturn = i == last && s is ReturnStatementSyntax { Expression: not null };
            if (!isFinalReturn && LeavesEarly(s)) return;
            if (isFinalReturn && s.DescendantNodes().Any(n => n is LambdaExpressionSyntax or AnonymousMethodExpressionSyntax)) return;
            if (Writes(model, s, notifier) || s.DescendantNodesAndSelf().OfType<InvocationExpressionSyntax>().Any(c => IsPutCall(model, c, context.CancellationToken))) return;
        }
        var put = block.Statements[putAt];
        var finalStatement = block.Statements[last];
        string? local = finalStatement is ReturnStatementSyntax ? FreeName(model, finalStatement.SpanStart) : null;
        if (finalStatement is ReturnStatementSyntax && local == null) return;
        context.RegisterCodeFix(CodeAction.Create(Title, ct =>
        {
            var statements = new List<StatementSyntax>();
            for (int i = 0; i < block.Statements.Count; i++)
            {
                var s = block.Statements[i];
                if (i == putAt) continue;
                if (i == last && s is ReturnStatementSyntax ret)
                {
                    var eol = LineEndings.Of(root);
                    statements.Add(SyntaxFactory.ParseStatement($"var {local} = {ret.Expression!.WithoutTrivia()};")
                        .WithLeadingTrivia(s.GetLeadingTrivia()).WithTrailingTrivia(eol));
                    statements.Add(put.WithLeadingTrivia(s.GetLeadingTrivia()).WithTrailingTrivia(eol));
                    statements.Add(SyntaxFactory.ParseStatement($"return {local};").WithLeadingTrivia(s.GetLeadingTrivia()).WithTrailingTrivia(s.GetTrailingTrivia()));
                    continue;
                }
                statements.Add(s);
                if (i == last) statements.Add(put.WithLeadingTrivia(s.GetLeadingTrivia()).WithTrailingTrivia(s.GetTrailingTrivia()));
            }
            return Task.FromResult(context.Document.WithSyntaxRoot(root.ReplaceNode(block, block.WithStatements(SyntaxFactory.List(statements)))));
        }, equivalenceKey: Title), context.Diagnostics);
    }

    private static bool IsNotifierPut(SemanticModel model, StatementSyntax s, CancellationToken ct) =>
        s.DescendantNodes().OfType<InvocationExpressionSyntax>().Any(c => IsPutCall(model, c, ct));

    private static bool IsPutCall(SemanticModel model, InvocationExpressionSyntax c, CancellationToken ct) =>
        model.GetSymbolInfo(c, ct).Symbol is IMethodSymbol { Name: "Put" } m && NotifierSyntax.DeclaredBy(m, NotifierSyntax.MmuNotifier);

    private static bool Mentions(SemanticModel model, SyntaxNode node, ISymbol symbol, CancellationToken ct)
    {
        foreach (var id in node.DescendantNodesAndSelf().OfType<IdentifierNameSyntax>())
            if (id.Identifier.Text == symbol.Name && SymbolEqualityComparer.Default.Equals(model.GetSymbolInfo(id, ct).Symbol, symbol)) return true;
        return false;
    }

    private static bool Writes(SemanticModel model, StatementSyntax s, ISymbol symbol)
    {
        if (s is LocalDeclarationStatementSyntax || s.DescendantNodesAndSelf().OfType<AssignmentExpressionSyntax>().Any()
            || s.DescendantNodesAndSelf().OfType<ArgumentSyntax>().Any(a => !a.RefKindKeyword.IsKind(SyntaxKind.None)))
        {
            var flow = model.AnalyzeDataFlow(s);
            return flow == null || !flow.Succeeded || flow.WrittenInside.Contains(symbol, SymbolEqualityComparer.Default)
                || (symbol is IFieldSymbol && s.DescendantNodesAndSelf().OfType<AssignmentExpressionSyntax>().Any(a => a.Left.ToString().EndsWith(symbol.Name, StringComparison.Ordinal)));
        }
        return false;
    }

    private static bool LeavesEarly(StatementSyntax s) =>
        s.DescendantNodesAndSelf().Any(n => n is ReturnStatementSyntax or ThrowStatementSyntax or ThrowExpressionSyntax or BreakStatementSyntax
            or ContinueStatementSyntax or GotoStatementSyntax or YieldStatementSyntax
            && !n.Ancestors().Any(a => a is LambdaExpressionSyntax or AnonymousMethodExpressionSyntax or LocalFunctionStatementSyntax));

    private static string? FreeName(SemanticModel model, int position)
    {
        foreach (var name in new[] { "result", "value", "kept" })
            if (model.LookupSymbols(position, name: name).IsEmpty) return name;
        return null;
    }
}
