using System.Collections.Concurrent;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;
using static Hmm.Analyzers.Flow.OperationTrees;

namespace Hmm.Analyzers.Rules;

/// <summary>
/// HMM1051: a notifier (a local, parameter or field of this object) used — a member access, a
/// call on it, passed to a method, or put again — on a path after a put of it: a
/// [ReleasesReference("mmu-notifier")] call, or a call to a source helper that puts the parameter
/// it is given, at any depth (summaries solved at compilation end). A may-analysis over the
/// control-flow graph: one path through the put suffices. Assigning the variable again (a new
/// Get's out argument included) ends the verdict. Bodies that never put anything are not kept.
/// A put reaches the body's aliases of the notifier (a notifier local assigned once from a variable
/// that is itself never reassigned: <c>var m = n; n.Put(); m.Mm</c>); an assignment copies the
/// verdict of its source. <c>n?.Put()</c>, lowered by the CFG into a flow capture of <c>n</c>, is
/// the put of <c>n</c>. Lambdas and local functions are analysed as bodies of their own: a lambda
/// starts from the union of the states where it is created (a notifier put before the lambda is
/// created is put inside it) and where a delegate local holding it is invoked (created before the
/// put, run after it); a local function from the union of the states where its declaring graph
/// calls it, directly or through a delegate local (nothing put when it is never called there).
/// </summary>
internal sealed class MmuNotifierUseAfterPut(INamedTypeSymbol releasesAttr, INamedTypeSymbol? notifierType)
{
    private sealed class Body(IMethodSymbol method, ControlFlowGraph cfg)
    {
        public IMethodSymbol Method { get; } = method;
        public ControlFlowGraph Cfg { get; } = cfg;
    }

    private readonly ConcurrentBag<Body> _bodies = new();
    private readonly ConcurrentDictionary<IMethodSymbol, bool> _sourceMethods = new(SymbolEqualityComparer.Default);
    private Dictionary<(IMethodSymbol, int), bool>? _putsParam;

    /// <summary>Whether <paramref name="m"/> is a [ReleasesReference("mmu-notifier")] method.</summary>
    public bool IsNotifierPut(IMethodSymbol m) => ReleasedKind(m) == MmuNotifierRules.Kind;

    /// <summary>Keeps a body that may put a notifier (directly, or through a source helper it hands values to).</summary>
    public void Collect(IMethodSymbol method, ControlFlowGraph? cfg)
    {
        if (cfg == null) return;
        _sourceMethods.TryAdd(method.OriginalDefinition, true);
        _bodies.Add(new Body(method, cfg));
    }

    private string? ReleasedKind(IMethodSymbol m)
    {
        foreach (var a in m.OriginalDefinition.GetAttributes())
            if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, releasesAttr) && a.ConstructorArguments.Length == 2)
                return a.ConstructorArguments[0].Value as string;
        return null;
    }

    private string? ReleasedTarget(IMethodSymbol m)
    {
        foreach (var a in m.OriginalDefinition.GetAttributes())
            if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, releasesAttr) && a.ConstructorArguments.Length == 2)
                return a.ConstructorArguments[1].Value as string;
        return null;
    }

    public void Report(Action<Diagnostic> report, CancellationToken cancel)
    {
        var bodies = new List<Body>(_bodies);
        if (bodies.Count == 0) return;
        SolveSummaries(bodies);
        var found = new List<Diagnostic>();
        foreach (var b in bodies)
        {
            cancel.ThrowIfCancellationRequested();
            Analyze(b, found);
        }
        found.Sort((x, y) =>
        {
            int c = string.CompareOrdinal(x.Location.SourceTree?.FilePath, y.Location.SourceTree?.FilePath);
            return c != 0 ? c : x.Location.SourceSpan.Start.CompareTo(y.Location.SourceSpan.Start);
        });
        var seen = new HashSet<int>();
        foreach (var d in found)
            if (seen.Add(d.Location.SourceSpan.Start)) report(d);
    }

    // ---- summaries: which source methods put which parameter ------------------------------------

    private void SolveSummaries(List<Body> bodies)
    {
        var puts = new Dictionary<(IMethodSymbol, int), bool>();
        var forwards = new List<(IMethodSymbol From, int FromParam, IMethodSymbol To, int ToParam)>();
        foreach (var b in bodies)
        {
            var m = (IMethodSymbol)b.Method.OriginalDefinition;
            var captures = new Dictionary<CaptureId, ISymbol>();
            foreach (var block in b.Cfg.Blocks)
                foreach (var root in Roots(block))
                    foreach (var op in root.DescendantsAndSelf())
                    {
                        if (op is IFlowCaptureOperation fc && Key(fc.Value, captures) is { } captured) captures[fc.Id] = captured;
                        if (op is not IInvocationOperation inv) continue;
                        if ((PutTarget(inv) is { } putOperand ? Key(putOperand, captures) : null) is IParameterSymbol pr && pr.ContainingSymbol is IMethodSymbol owner
                            && SymbolEqualityComparer.Default.Equals(owner.OriginalDefinition, m))
                            puts[(m, pr.Ordinal)] = true;
                        foreach (var arg in inv.Arguments)
                            if (arg.Parameter != null && Unwrap(arg.Value) is IParameterReferenceOperation ap
                                && _sourceMethods.ContainsKey(inv.TargetMethod.OriginalDefinition))
                                forwards.Add((m, ap.Parameter.Ordinal, (IMethodSymbol)inv.TargetMethod.OriginalDefinition, arg.Parameter.Ordinal));
                    }
        }
        bool changed = true;
        while (changed)
        {
            changed = false;
            foreach (var f in forwards)
                if (puts.ContainsKey((f.To, f.ToParam)) && !puts.ContainsKey((f.From, f.FromParam)))
                {
                    puts[(f.From, f.FromParam)] = true;
                    changed = true;
                }
        }
        _putsParam = puts;
    }

    /// <summary>The notifier operand a call puts (its receiver or the released argument), or null.</summary>
    private IOperation? PutTarget(IInvocationOperation inv)
    {
        if (ReleasedKind(inv.TargetMethod) == MmuNotifierRules.Kind)
        {
            string? target = ReleasedTarget(inv.TargetMethod);
            if (target == "this") return Receiver(inv);
            foreach (var a in inv.Arguments)
                if (a.Parameter?.Name == target) return Unwrap(a.Value);
            return null;
        }
        return null;
    }

    /// <summary>Operands of <paramref name="inv"/> a source helper puts (by its summary).</summary>
    private IEnumerable<IOperation> HelperPuts(IInvocationOperation inv)
    {
        if (_putsParam == null || inv.TargetMethod.DeclaringSyntaxReferences.IsEmpty) yield break;
        var callee = (IMethodSymbol)inv.TargetMethod.OriginalDefinition;
        foreach (var a in inv.Arguments)
            if (a.Parameter != null && _putsParam.ContainsKey((callee, a.Parameter.Ordinal)) && Unwrap(a.Value) is { } v) yield return v;
    }

    // ---- the per-body may-analysis ------------------------------------------------------------

    /// <summary>What one graph's walk knows besides the state: its flow captures, its notifier aliases, the lambdas it creates.</summary>
    private sealed class GraphWalk(ControlFlowGraph cfg, IMethodSymbol method, Dictionary<ISymbol, List<ISymbol>> aliases, Dictionary<ISymbol, object>? delegates)
    {
        public ControlFlowGraph Cfg { get; } = cfg;
        public IMethodSymbol Method { get; } = method;
        public Dictionary<ISymbol, List<ISymbol>> Aliases { get; } = aliases;
        public Dictionary<CaptureId, ISymbol> Captures { get; } = new();

        /// <summary>
        /// Delegate locals assigned exactly once, from a lambda (its <see cref="IFlowAnonymousFunctionOperation"/>)
        /// or a local function's method group (its <see cref="IMethodSymbol"/>): invoking the local runs that body.
        /// </summary>
        public Dictionary<ISymbol, object>? Delegates { get; } = delegates;

        /// <summary>Lambdas created in this graph, with the union of the states at their creation and at the invocations of a delegate local holding them.</summary>
        public Dictionary<IFlowAnonymousFunctionOperation, Dictionary<ISymbol, Location>> Lambdas { get; } = new();

        /// <summary>Local functions called from this graph (directly or through a delegate local), with the union of the states at the calls.</summary>
        public Dictionary<IMethodSymbol, Dictionary<ISymbol, Location>> LocalCalls { get; } = new(SymbolEqualityComparer.Default);
    }

    private void Analyze(Body body, List<Diagnostic> found)
    {
        var pending = new Queue<(ControlFlowGraph Cfg, Dictionary<ISymbol, Location> Entry)>();
        pending.Enqueue((body.Cfg, new Dictionary<ISymbol, Location>(SymbolEqualityComparer.Default)));
        int graphs = 0;
        while (pending.Count > 0 && graphs++ < 64)
        {
            var (cfg, entry) = pending.Dequeue();
            var aliases = Aliases(cfg, out var delegates);
            var walk = new GraphWalk(cfg, body.Method, aliases, delegates);
            AnalyzeGraph(walk, entry, found);
            // A lambda starts from the states where it is created and where a delegate local holding it is
            // invoked (created before the put, run after it: its captures read a freed notifier); a local
            // function from the states where this graph calls it (nothing put when it is never called here).
            foreach (var lambda in walk.Lambdas)
                pending.Enqueue((cfg.GetAnonymousFunctionControlFlowGraph(lambda.Key), lambda.Value));
            foreach (var local in cfg.LocalFunctions)
                pending.Enqueue((cfg.GetLocalFunctionControlFlowGraph(local),
                    walk.LocalCalls.TryGetValue(local, out var calls) ? calls : new Dictionary<ISymbol, Location>(SymbolEqualityComparer.Default)));
        }
    }

    private void AnalyzeGraph(GraphWalk walk, Dictionary<ISymbol, Location> entry, List<Diagnostic> found)
    {
        var blocks = walk.Cfg.Blocks;
        var inStates = new Dictionary<ISymbol, Location>?[blocks.Length];
        var work = new Queue<int>();
        inStates[0] = entry;
        work.Enqueue(0);
        var queued = new bool[blocks.Length];
        queued[0] = true;
        int guard = 0;
        while (work.Count > 0 && guard++ < 10_000)
        {
            int i = work.Dequeue();
            queued[i] = false;
            var state = new Dictionary<ISymbol, Location>(inStates[i]!, SymbolEqualityComparer.Default);
            foreach (var root in Roots(blocks[i])) Walk(root, state, found, walk);
            foreach (var succ in Successors(blocks[i]))
            {
                var target = inStates[succ.Ordinal];
                bool grew = false;
                if (target == null) { inStates[succ.Ordinal] = target = new Dictionary<ISymbol, Location>(SymbolEqualityComparer.Default); grew = true; }
                foreach (var kv in state)
                    if (!target.ContainsKey(kv.Key)) { target[kv.Key] = kv.Value; grew = true; }
                if (grew && !queued[succ.Ordinal]) { queued[succ.Ordinal] = true; work.Enqueue(succ.Ordinal); }
            }
        }
    }

    /// <summary>
    /// Notifier locals assigned exactly once, from a local, parameter or field of this that the
    /// graph never assigns: both names hold the same notifier everywhere, so a put of one is a put
    /// of the other. Only graphs that assign a notifier-typed local pay for the second walk.
    /// </summary>
    private Dictionary<ISymbol, List<ISymbol>> Aliases(ControlFlowGraph cfg, out Dictionary<ISymbol, object>? delegates)
    {
        var result = new Dictionary<ISymbol, List<ISymbol>>(SymbolEqualityComparer.Default);
        delegates = null;
        if (notifierType == null) return result;
        Dictionary<ISymbol, int>? writes = null;
        List<(ISymbol Alias, IOperation Source)>? candidates = null;
        List<(ISymbol Local, object Body)>? delegateCandidates = null;
        foreach (var block in cfg.Blocks)
            foreach (var root in Roots(block))
                foreach (var op in root.DescendantsAndSelf())
                {
                    ISymbol? written = op switch
                    {
                        ISimpleAssignmentOperation a => Key(a.Target, null),
                        IArgumentOperation { Parameter.RefKind: RefKind.Out or RefKind.Ref } arg => Key(arg.Value, null),
                        ICompoundAssignmentOperation c => Key(c.Target, null),
                        _ => null,
                    };
                    if (written == null) continue;
                    writes ??= new Dictionary<ISymbol, int>(SymbolEqualityComparer.Default);
                    writes[written] = writes.TryGetValue(written, out int n) ? n + 1 : 1;
                    if (op is ISimpleAssignmentOperation { Target: ILocalReferenceOperation l } asg)
                    {
                        if (IsNotifier(l.Local.Type)) (candidates ??= new()).Add((l.Local, asg.Value));
                        else if (DelegateBody(asg.Value) is { } db) (delegateCandidates ??= new()).Add((l.Local, db));
                    }
                }
        if (delegateCandidates != null)
            foreach (var (local, db) in delegateCandidates)
                if (writes![local] == 1) (delegates ??= new Dictionary<ISymbol, object>(SymbolEqualityComparer.Default))[local] = db;
        if (candidates == null) return result;
        foreach (var (alias, source) in candidates)
        {
            if (writes![alias] != 1 || Key(source, null) is not { } of || writes.ContainsKey(of)) continue;
            Link(result, alias, of);
            Link(result, of, alias);
        }
        return result;
    }

    /// <summary>The body a delegate value runs: a lambda of this graph, or a local function's method group.</summary>
    private static object? DelegateBody(IOperation value) => Unwrap(value) switch
    {
        IDelegateCreationOperation { Target: var t } => Unwrap(t) switch
        {
            IFlowAnonymousFunctionOperation f => f,
            IMethodReferenceOperation { Method.MethodKind: MethodKind.LocalFunction } mr => mr.Method.OriginalDefinition,
            _ => null,
        },
        IFlowAnonymousFunctionOperation f => f,
        _ => null,
    };

    private static void Merge(Dictionary<ISymbol, Location> state, Dictionary<ISymbol, Location> into)
    {
        foreach (var kv in state)
            if (!into.ContainsKey(kv.Key)) into[kv.Key] = kv.Value;
    }

    /// <summary>A call that runs a local function or a lambda of this graph: the state at the call reaches that body.</summary>
    private static void RecordRun(IInvocationOperation inv, Dictionary<ISymbol, Location> state, GraphWalk walk)
    {
        object? body = null;
        if (inv.TargetMethod.MethodKind == MethodKind.LocalFunction) body = inv.TargetMethod.OriginalDefinition;
        else if (inv.TargetMethod.MethodKind == MethodKind.DelegateInvoke && walk.Delegates != null
            && Key(Receiver(inv), walk.Captures) is { } d && walk.Delegates.TryGetValue(d, out var held)) body = held;
        switch (body)
        {
            case IFlowAnonymousFunctionOperation lambda:
                if (!walk.Lambdas.TryGetValue(lambda, out var at)) walk.Lambdas[lambda] = at = new Dictionary<ISymbol, Location>(SymbolEqualityComparer.Default);
                Merge(state, at);
                break;
            case IMethodSymbol local:
                if (!walk.LocalCalls.TryGetValue(local, out var calls)) walk.LocalCalls[local] = calls = new Dictionary<ISymbol, Location>(SymbolEqualityComparer.Default);
                Merge(state, calls);
                break;
        }
    }

    private static void Link(Dictionary<ISymbol, List<ISymbol>> aliases, ISymbol from, ISymbol to)
    {
        if (!aliases.TryGetValue(from, out var list)) aliases[from] = list = new List<ISymbol>();
        list.Add(to);
    }

    private bool IsNotifier(ITypeSymbol? t)
    {
        for (var n = t as INamedTypeSymbol; n != null; n = n.BaseType)
            if (SymbolEqualityComparer.Default.Equals(n, notifierType)) return true;
        return false;
    }

    private static IEnumerable<BasicBlock> Successors(BasicBlock b)
    {
        if (b.FallThroughSuccessor?.Destination is { } f) yield return f;
        if (b.ConditionalSuccessor?.Destination is { } c) yield return c;
    }

    private static IEnumerable<IOperation> Roots(BasicBlock b)
    {
        foreach (var op in b.Operations) yield return op;
        if (b.BranchValue != null) yield return b.BranchValue;
    }

    /// <summary>Post-order walk: operands before the operation, so a put takes effect after its receiver was read.</summary>
    private void Walk(IOperation op, Dictionary<ISymbol, Location> state, List<Diagnostic> found, GraphWalk walk)
    {
        if (op is IFlowAnonymousFunctionOperation lambda)
        {
            if (!walk.Lambdas.TryGetValue(lambda, out var at)) walk.Lambdas[lambda] = at = new Dictionary<ISymbol, Location>(SymbolEqualityComparer.Default);
            foreach (var kv in state)
                if (!at.ContainsKey(kv.Key)) at[kv.Key] = kv.Value;
            return;
        }
        if (op is IAnonymousFunctionOperation or ILocalFunctionOperation) return;
        foreach (var child in op.ChildOperations) Walk(child, state, found, walk);
        switch (op)
        {
            case IFlowCaptureOperation fc when Key(fc.Value, walk.Captures) is { } captured:
                walk.Captures[fc.Id] = captured;
                break;
            case IInvocationOperation inv:
                CheckUse(Receiver(inv), inv.TargetMethod.Name, inv, state, found, walk);
                RecordRun(inv, state, walk);
                foreach (var a in inv.Arguments)
                {
                    if (a.Parameter?.RefKind is RefKind.Out or RefKind.Ref)
                    {
                        if (Key(a.Value, walk.Captures) is { } k) state.Remove(k);
                        continue;
                    }
                    CheckUse(Unwrap(a.Value), "passed to " + inv.TargetMethod.Name, inv, state, found, walk);
                }
                if (PutTarget(inv) is { } put && Key(put, walk.Captures) is { } pk) MarkPut(pk, inv, state, walk);
                foreach (var hp in HelperPuts(inv))
                    if (Key(hp, walk.Captures) is { } hk) MarkPut(hk, inv, state, walk);
                break;
            case IPropertyReferenceOperation pr when pr.Instance != null:
                CheckUse(Unwrap(pr.Instance), pr.Property.Name, pr, state, found, walk);
                break;
            case IFieldReferenceOperation fr when fr.Instance != null && fr.Instance is not IInstanceReferenceOperation:
                CheckUse(Unwrap(fr.Instance), fr.Field.Name, fr, state, found, walk);
                break;
            case ISimpleAssignmentOperation asg when Key(asg.Target, walk.Captures) is { } tk:
                // The target now holds the source's value: put if the source was.
                if (Key(asg.Value, walk.Captures) is { } from && state.TryGetValue(from, out var putAt)) state[tk] = putAt;
                else state.Remove(tk);
                break;
        }
    }

    private static void MarkPut(ISymbol key, IInvocationOperation inv, Dictionary<ISymbol, Location> state, GraphWalk walk)
    {
        var at = inv.Syntax.GetLocation();
        state[key] = at;
        if (walk.Aliases.TryGetValue(key, out var others))
            foreach (var o in others) state[o] = at;
    }

    private void CheckUse(IOperation? operand, string what, IOperation at, Dictionary<ISymbol, Location> state, List<Diagnostic> found, GraphWalk walk)
    {
        if (operand == null || Key(operand, walk.Captures) is not { } key || !state.TryGetValue(key, out var putAt)) return;
        string verb = at is IInvocationOperation inv && PutTarget(inv) != null ? "is put again (a put without a get)" : "is used (" + what + ")";
        int line = putAt.GetLineSpan().StartLinePosition.Line + 1;
        found.Add(Diagnostic.Create(MmuNotifierRules.UsedAfterPut, at.Syntax.GetLocation(), Name(key), verb, line));
    }

    private static string Name(ISymbol s) => s.Name;

    /// <summary>A local, a parameter, or a field of this object; a flow capture of one of them (<c>n?.Put()</c>) is that variable.</summary>
    private static ISymbol? Key(IOperation? op, Dictionary<CaptureId, ISymbol>? captures) => Unwrap(op) switch
    {
        ILocalReferenceOperation l => l.Local,
        IParameterReferenceOperation p => p.Parameter,
        IFieldReferenceOperation { Instance: null or IInstanceReferenceOperation } f => f.Field,
        IDeclarationExpressionOperation { Expression: ILocalReferenceOperation l2 } => l2.Local,
        IFlowCaptureReferenceOperation c when captures != null && captures.TryGetValue(c.Id, out var s) => s,
        _ => null,
    };
}
