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
/// </summary>
internal sealed class MmuNotifierUseAfterPut(INamedTypeSymbol releasesAttr)
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
            foreach (var block in b.Cfg.Blocks)
                foreach (var root in Roots(block))
                    foreach (var op in root.DescendantsAndSelf())
                    {
                        if (op is not IInvocationOperation inv) continue;
                        if (PutTarget(inv) is IParameterReferenceOperation pr && pr.Parameter.ContainingSymbol is IMethodSymbol owner
                            && SymbolEqualityComparer.Default.Equals(owner.OriginalDefinition, m))
                            puts[(m, pr.Parameter.Ordinal)] = true;
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

    private void Analyze(Body body, List<Diagnostic> found)
    {
        var blocks = body.Cfg.Blocks;
        var inStates = new Dictionary<ISymbol, Location>?[blocks.Length];
        var work = new Queue<int>();
        inStates[0] = new Dictionary<ISymbol, Location>(SymbolEqualityComparer.Default);
        work.Enqueue(0);
        var queued = new bool[blocks.Length];
        queued[0] = true;
        int guard = 0;
        while (work.Count > 0 && guard++ < 10_000)
        {
            int i = work.Dequeue();
            queued[i] = false;
            var state = new Dictionary<ISymbol, Location>(inStates[i]!, SymbolEqualityComparer.Default);
            foreach (var root in Roots(blocks[i])) Walk(root, state, found, body.Method);
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
    private void Walk(IOperation op, Dictionary<ISymbol, Location> state, List<Diagnostic> found, IMethodSymbol method)
    {
        if (op is IAnonymousFunctionOperation or ILocalFunctionOperation) return;
        foreach (var child in op.ChildOperations) Walk(child, state, found, method);
        switch (op)
        {
            case IInvocationOperation inv:
                CheckUse(Receiver(inv), inv.TargetMethod.Name, inv, state, found, method);
                foreach (var a in inv.Arguments)
                {
                    if (a.Parameter?.RefKind is RefKind.Out or RefKind.Ref)
                    {
                        if (Key(a.Value) is { } k) state.Remove(k);
                        continue;
                    }
                    CheckUse(Unwrap(a.Value), "passed to " + inv.TargetMethod.Name, inv, state, found, method);
                }
                if (PutTarget(inv) is { } put && Key(put) is { } pk) state[pk] = inv.Syntax.GetLocation();
                foreach (var hp in HelperPuts(inv))
                    if (Key(hp) is { } hk) state[hk] = inv.Syntax.GetLocation();
                break;
            case IPropertyReferenceOperation pr when pr.Instance != null:
                CheckUse(Unwrap(pr.Instance), pr.Property.Name, pr, state, found, method);
                break;
            case IFieldReferenceOperation fr when fr.Instance != null && fr.Instance is not IInstanceReferenceOperation:
                CheckUse(Unwrap(fr.Instance), fr.Field.Name, fr, state, found, method);
                break;
            case ISimpleAssignmentOperation asg when Key(asg.Target) is { } tk:
                state.Remove(tk);
                break;
        }
    }

    private void CheckUse(IOperation? operand, string what, IOperation at, Dictionary<ISymbol, Location> state, List<Diagnostic> found, IMethodSymbol method)
    {
        if (operand == null || Key(operand) is not { } key || !state.TryGetValue(key, out var putAt)) return;
        string verb = at is IInvocationOperation inv && PutTarget(inv) != null ? "is put again (a put without a get)" : "is used (" + what + ")";
        int line = putAt.GetLineSpan().StartLinePosition.Line + 1;
        found.Add(Diagnostic.Create(MmuNotifierRules.UsedAfterPut, at.Syntax.GetLocation(), Name(key), verb, line));
    }

    private static string Name(ISymbol s) => s.Name;

    /// <summary>A local, a parameter, or a field of this object.</summary>
    private static ISymbol? Key(IOperation? op) => Unwrap(op) switch
    {
        ILocalReferenceOperation l => l.Local,
        IParameterReferenceOperation p => p.Parameter,
        IFieldReferenceOperation { Instance: null or IInstanceReferenceOperation } f => f.Field,
        IDeclarationExpressionOperation { Expression: ILocalReferenceOperation l2 } => l2.Local,
        _ => null,
    };
}
