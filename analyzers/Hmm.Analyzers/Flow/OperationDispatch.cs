using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Hmm.Analyzers.Flow;

/// <summary>
/// One operation met by <see cref="OperationDispatch"/>: what a rule's per-operation check needs of
/// Roslyn's <c>OperationAnalysisContext</c> (the operation, the member whose body holds it, the sink).
/// </summary>
internal readonly struct OperationSite(IOperation operation, ISymbol containingSymbol, Action<Diagnostic> report, CancellationToken cancellationToken)
{
    public IOperation Operation { get; } = operation;

    /// <summary>The member declaring the body (never a lambda or local function, as for an operation action).</summary>
    public ISymbol ContainingSymbol { get; } = containingSymbol;

    public CancellationToken CancellationToken { get; } = cancellationToken;

    public void ReportDiagnostic(Diagnostic diagnostic) => report(diagnostic);
}

/// <summary>
/// Every per-body check of the HMM1xxx analyzer (the flow engine's AnalyzeBody and each rule's body
/// scan) and every per-operation check (HMM-R15's DefaultFlags, the range and owner rules, notifier
/// removal, the notifier field initializers), run from ONE operation-block action: the body checks one
/// after the other, then one walk of the member's operation trees for the per-operation handlers;
/// instead of six <c>RegisterOperationBlockAction</c> and eight <c>RegisterOperationAction</c> callbacks.
/// </summary>
/// <remarks>
/// <para>
/// Why: the analyzer driver pays per callback (a context, an exception guard, execution-time
/// bookkeeping), and for an analyzer with operation actions it also collects each body's operations
/// into a list and dispatches every node through its per-kind action table: on the benchmark corpus
/// 6 × 11,144 block callbacks and ~60,000 operation callbacks (21,336 field/property references alone).
/// One callback per member and one walk with a per-kind array of handlers do the same work.
/// </para>
/// <para>
/// Same bodies: each <see cref="OnBlock"/> handler receives the very context it would have received from
/// its own registration (same blocks, same owning symbol, same control-flow-graph cache). A handler that
/// throws now ends the member's other checks too; the driver reports it (AD0001) either way.
/// </para>
/// <para>
/// Same operations as the driver: the driver hands operation actions every operation of every operation
/// block of a member (<c>DescendantsAndSelf</c> of each block: lambdas, local functions, constructor
/// initializers, field and property initializers and parameter defaults included), with the member as
/// <c>ContainingSymbol</c>; an operation-block action receives exactly those blocks for that member, and
/// generated code is excluded from both alike (<c>ConfigureGeneratedCodeAnalysis</c>). The one operation
/// the driver adds besides, the <c>IMethodBodyOperation</c>/<c>IConstructorBodyOperation</c> parent of a
/// body, has no handler here. Handlers of one kind run in registration order, as the driver runs them.
/// </para>
/// </remarks>
internal sealed class OperationDispatch
{
    // OperationKind values are below 0x100 (Roslyn 4.14 stops near 0x80).
    private const int KindCount = 0x100;
    private readonly Action<OperationSite>?[] _handlers = new Action<OperationSite>?[KindCount];
    private bool _any;

    /// <summary>Runs <paramref name="handler"/> on every operation of the given kinds (registration only during compilation start).</summary>
    public void On(Action<OperationSite> handler, params OperationKind[] kinds)
    {
        foreach (var k in kinds)
        {
            int i = (int)k;
            if (i <= 0 || i >= KindCount) throw new ArgumentOutOfRangeException(nameof(kinds), k, "operation kind outside the dispatch table");
            _handlers[i] = (Action<OperationSite>?)Delegate.Combine(_handlers[i], handler);
        }
        _any = true;
    }

    private Action<CompilationAnalysisContext>? _end;
    private Action<OperationBlockAnalysisContext>? _blocks;

    /// <summary>A per-body check, run for every member with operation blocks (in registration order).</summary>
    public void OnBlock(Action<OperationBlockAnalysisContext> action) => _blocks += action;

    /// <summary>A compilation-end verdict over what the handlers gathered (registered with them, after the walk action).</summary>
    public void OnCompilationEnd(Action<CompilationAnalysisContext> action) => _end += action;

    /// <summary>Registers the single operation-block action that runs every handler (nothing when no rule registered one), then the end actions.</summary>
    public void Register(CompilationStartAnalysisContext start)
    {
        if (_any || _blocks != null) start.RegisterOperationBlockAction(Run);
        if (_end != null)
            foreach (var d in _end.GetInvocationList()) start.RegisterCompilationEndAction((Action<CompilationAnalysisContext>)d);
    }

    private void Run(OperationBlockAnalysisContext context)
    {
        _blocks?.Invoke(context);
        if (_any) Walk(context);
    }

    private void Walk(OperationBlockAnalysisContext context)
    {
        Action<Diagnostic> report = context.ReportDiagnostic;
        var stack = new Stack<IOperation>();
        foreach (var block in context.OperationBlocks)
        {
            context.CancellationToken.ThrowIfCancellationRequested();
            // Pre-order, children left to right: the order the driver's DescendantsAndSelf visits them in.
            stack.Push(block);
            while (stack.Count > 0)
            {
                var op = stack.Pop();
                int k = (int)op.Kind;
                if (k > 0 && k < KindCount && _handlers[k] is { } handler)
                    handler(new OperationSite(op, context.OwningSymbol, report, context.CancellationToken));
                foreach (var child in op.ChildOperations.Reverse()) stack.Push(child);
            }
        }
    }
}
