using System.Collections.Concurrent;
using System.Collections.Immutable;
using Hmm.Analyzers.Flow;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;
using static Hmm.Analyzers.Flow.OperationTrees;

namespace Hmm.Analyzers.Rules;

/// <summary>
/// HMM1035, the notifier's field lifetime: from the moment <c>Insert</c> returns until
/// <c>Remove</c> returns, the invalidate callback (release included: an interval notifier's
/// release is an invalidation with event Release) may run on another CPU at any time. Every field
/// it reads — itself or through the helpers it calls — must therefore be assigned before the
/// insert, and torn down (nulled, disposed) only after the remove or while holding a lock the
/// callback takes (U). Each body is reduced to a small record (reads, assignments, source
/// callees, inserts, and, over its control-flow graph, which candidate insert may precede which
/// assignment and the lock/remove state at each teardown and source call); the verdict is taken
/// at compilation end, when inserts, assignments and teardowns hidden in helpers are known.
/// </summary>
internal static class NotifierFieldRules
{
    /// <summary>An insert candidate: a direct Insert (ops types known) or a call to a source method that may insert.</summary>
    private sealed class InsertPoint(IMethodSymbol? callee, ISymbol? receiver, ImmutableArray<ITypeSymbol> localOps, Location location, ImmutableHashSet<ISymbol> assignedBefore)
    {
        public IMethodSymbol? Callee { get; } = callee;
        public ISymbol? Receiver { get; } = receiver;
        public ImmutableArray<ITypeSymbol> LocalOps { get; } = localOps;
        public Location Location { get; } = location;
        public ImmutableHashSet<ISymbol> AssignedBefore { get; } = assignedBefore;
    }

    /// <summary>An assignment candidate after an insert candidate: a direct field store or a call that may store.</summary>
    private sealed class LateStore(InsertPoint insert, ISymbol? field, IMethodSymbol? callee, Location location)
    {
        public InsertPoint Insert { get; } = insert;
        public ISymbol? Field { get; } = field;
        public IMethodSymbol? Callee { get; } = callee;
        public Location Location { get; } = location;
    }

    /// <summary>A teardown of a field, or a call to a source method (which may tear down), with the state there.</summary>
    private sealed class StatePoint(ISymbol? field, IMethodSymbol? callee, Location location, ImmutableHashSet<string> held, bool removed, ImmutableArray<IMethodSymbol> earlier)
    {
        public ISymbol? Field { get; } = field;
        public IMethodSymbol? Callee { get; } = callee;
        public Location Location { get; } = location;
        public ImmutableHashSet<string> Held { get; } = held;
        public bool Removed { get; } = removed;
        public ImmutableArray<IMethodSymbol> Earlier { get; } = earlier;
    }

    private sealed class Body(IMethodSymbol method)
    {
        public IMethodSymbol Method { get; } = method;
        public HashSet<ISymbol> Reads { get; } = new(SymbolEqualityComparer.Default);
        public HashSet<ISymbol> Stores { get; } = new(SymbolEqualityComparer.Default);
        public HashSet<IMethodSymbol> Callees { get; } = new(SymbolEqualityComparer.Default);
        public HashSet<string> Takes { get; } = new(StringComparer.Ordinal);
        public List<InsertPoint> Inserts { get; } = [];
        public bool Removes { get; set; }
        public List<LateStore> Late { get; } = [];
        public List<StatePoint> Teardowns { get; } = [];
        public List<StatePoint> CallStates { get; } = [];
    }

    public static void Register(Compilation compilation, ContractSet contracts, OperationDispatch operations)
    {
        if (contracts.Type(KnownNames.IntervalNotifier) is not { } notifierType) return;
        if (RuntimeTypes.Of(compilation).Get("Hmm.Runtime.Notifiers.IIntervalNotifierOps")?.GetMembers("Invalidate").FirstOrDefault() is not IMethodSymbol invalidate) return;
        var bodies = new ConcurrentBag<Body>();
        var creations = new ConcurrentBag<(ISymbol Target, ITypeSymbol Ops)>();
        var initialised = new ConcurrentDictionary<ISymbol, bool>(SymbolEqualityComparer.Default);
        operations.OnBlock(b =>
        {
            if (b.OwningSymbol is not IMethodSymbol method) return;
            foreach (var block in b.OperationBlocks)
                if (block is IMethodBodyBaseOperation or IBlockOperation)
                {
                    if (Scan(b, block, method, contracts, notifierType, creations) is { } body) bodies.Add(body);
                    break;
                }
        });
        // Field initializers: `IntervalNotifier _n = new(new Ops(this))` is not in any method body.
        operations.On(c =>
        {
            var init = (IFieldInitializerOperation)c.Operation;
            foreach (var f in init.InitializedFields) initialised.TryAdd(f.OriginalDefinition, true);
            if (Unwrap(init.Value) is IObjectCreationOperation create && OpsOf(create, notifierType) is { } ops)
                foreach (var f in init.InitializedFields) creations.Add((f.OriginalDefinition, ops));
        }, OperationKind.FieldInitializer);
        operations.On(c =>
        {
            foreach (var p in ((IPropertyInitializerOperation)c.Operation).InitializedProperties) initialised.TryAdd(p.OriginalDefinition, true);
        }, OperationKind.PropertyInitializer);
        operations.OnCompilationEnd(end => new Verdict(bodies, creations, initialised, invalidate, contracts).Run(end.ReportDiagnostic));
    }

    private static ITypeSymbol? OpsOf(IObjectCreationOperation create, INamedTypeSymbol notifierType)
    {
        if (!SymbolEqualityComparer.Default.Equals(create.Type, notifierType) || create.Arguments.Length != 1) return null;
        var t = Unwrap(create.Arguments[0].Value)?.Type;
        return t is { TypeKind: TypeKind.Class or TypeKind.Struct } ? t : null;
    }

    /// <summary>An instance field or property of the body's own object (this.F or F).</summary>
    private static ISymbol? OwnMember(IOperation? op, IMethodSymbol method) => Unwrap(op) switch
    {
        IFieldReferenceOperation { Field.IsStatic: false } f when f.Instance is IInstanceReferenceOperation && SymbolEqualityComparer.Default.Equals(f.Field.ContainingType.OriginalDefinition, method.ContainingType.OriginalDefinition) => f.Field.OriginalDefinition,
        IPropertyReferenceOperation { Property.IsStatic: false, Property.IsIndexer: false } p when p.Instance is IInstanceReferenceOperation && SymbolEqualityComparer.Default.Equals(p.Property.ContainingType.OriginalDefinition, method.ContainingType.OriginalDefinition) => p.Property.OriginalDefinition,
        _ => null,
    };

    private static bool IsWrite(IOperation op)
    {
        var p = op.Parent;
        while (p is IConversionOperation or IParenthesizedOperation) { op = p; p = p.Parent; }
        return p is IAssignmentOperation a && a.Target == op;
    }

    /// <summary>A store that ends a field's life: <c>F = null</c>/<c>default</c>, or <c>F.Dispose()</c>.</summary>
    private static ISymbol? TeardownOf(IOperation op, IMethodSymbol method) => op switch
    {
        ISimpleAssignmentOperation a when a.Value.ConstantValue is { HasValue: true, Value: null } || Unwrap(a.Value) is IDefaultValueOperation => OwnMember(a.Target, method),
        IInvocationOperation { TargetMethod.Name: "Dispose", Arguments.Length: 0 } inv => OwnMember(inv.Instance, method),
        _ => null,
    };

    private static bool HasAttribute(ISymbol symbol, string name)
    {
        foreach (var a in symbol.GetAttributes())
            if (a.AttributeClass?.Name == name) return true;
        return false;
    }

    private static bool IsSource(IMethodSymbol m, Compilation c) =>
        SymbolNames.HasSource(m) && SymbolEqualityComparer.Default.Equals(m.ContainingAssembly, c.Assembly);

    // ---- per body --------------------------------------------------------------------------

    private static Body? Scan(OperationBlockAnalysisContext context, IOperation root, IMethodSymbol method, ContractSet contracts, INamedTypeSymbol notifierType, ConcurrentBag<(ISymbol, ITypeSymbol)> creations)
    {
        var body = new Body(method.OriginalDefinition);
        bool ordered = false;   // worth a CFG walk: an insert, a teardown, or own stores next to own calls
        bool ownCalls = false;
        // A constructor's `: this(...)`/`: base(...)` is an operation block of its own next to the body; the
        // constructor-body operation holds both (and the CFG of the body runs the initializer first).
        var whole = root.Parent is IMethodBodyBaseOperation ctorBody ? ctorBody : root;
        foreach (var op in whole.Descendants())
        {
            switch (op)
            {
                case IFieldReferenceOperation f when !IsWrite(f):
                    body.Reads.Add(f.Field.OriginalDefinition);
                    break;
                case IPropertyReferenceOperation p when !IsWrite(p):
                    body.Reads.Add(p.Property.OriginalDefinition);
                    break;
                case ISimpleAssignmentOperation a when OwnMember(a.Target, method) is { } stored:
                    body.Stores.Add(stored);
                    if (Unwrap(a.Value) is IObjectCreationOperation create && OpsOf(create, notifierType) is { } ops) creations.Add((stored, ops));
                    break;
                case IInvocationOperation inv:
                    var m = inv.TargetMethod;
                    if (IsSource(m, contracts.Compilation)) { body.Callees.Add(m.OriginalDefinition); ownCalls |= OwnCall(inv); }
                    var contract = contracts.For(m);
                    foreach (var e in contract.LockEffects)
                        if (e.Kind != LockEffectKind.Release && MethodFlow.Resolve(contracts, e.Target, m, inv) is { } key) body.Takes.Add(key);
                    // [InsertsNotifier] / [RemovesNotifier]: IntervalNotifier.Insert/Remove, a DSL driver's generated Attach/Detach.
                    if (contract.InsertsNotifier) ordered = true;
                    if (contract.RemovesNotifier) body.Removes = true;
                    break;
            }
            if (TeardownOf(op, method) != null) ordered = true;
        }
        if ((ownCalls && body.Stores.Count > 0) || (body.Callees.Count > 0 && (body.Removes || body.Takes.Count > 0))) ordered = true;
        // `: this(...)` to a constructor that may insert, then a helper that may store: the order matters.
        if (method.MethodKind == MethodKind.Constructor && whole != root && ownCalls && body.Callees.Count > 1) ordered = true;
        if (ordered) Order(context.GetControlFlowGraph(root), body, method, contracts, notifierType);
        else if (body.Callees.Count > 0)
        {
            // No lock, remove or store here: each call sees nothing held, and any other callee may have run first (which can only silence).
            var all = ImmutableArray.CreateRange(body.Callees);
            var none = ImmutableHashSet.Create<string>(StringComparer.Ordinal);
            foreach (var inv in whole.Descendants().OfType<IInvocationOperation>())
                if (IsSource(inv.TargetMethod, contracts.Compilation))
                    body.CallStates.Add(new StatePoint(null, inv.TargetMethod.OriginalDefinition, inv.Syntax.GetLocation(), none, false, all));
        }
        return body;
    }

    private static bool OwnCall(IInvocationOperation inv) => inv.Instance is null or IInstanceReferenceOperation;

    /// <summary>Forward state over the control-flow graph (joins: must-sets intersect, may-sets unite).</summary>
    private sealed class State(ImmutableHashSet<ISymbol> assigned, ImmutableList<InsertPoint> inserts, ImmutableHashSet<string> held, bool removed, ImmutableList<IMethodSymbol> calls)
    {
        public ImmutableHashSet<ISymbol> Assigned { get; } = assigned;
        public ImmutableList<InsertPoint> Inserts { get; } = inserts;
        public ImmutableHashSet<string> Held { get; } = held;
        public bool Removed { get; } = removed;
        public ImmutableList<IMethodSymbol> Calls { get; } = calls;

        public static State Join(State a, State b)
        {
            var ins = a.Inserts;
            foreach (var i in b.Inserts) if (!ins.Contains(i)) ins = ins.Add(i);
            var calls = a.Calls;
            foreach (var c in b.Calls) if (!calls.Contains(c, SymbolEqualityComparer.Default)) calls = calls.Add(c);
            return new State(a.Assigned.Intersect(b.Assigned), ins, a.Held.Intersect(b.Held), a.Removed && b.Removed, calls);
        }

        public bool Same(State o) => Assigned.SetEquals(o.Assigned) && Inserts.Count == o.Inserts.Count && Held.SetEquals(o.Held) && Removed == o.Removed && Calls.Count == o.Calls.Count;
    }

    private static void Order(ControlFlowGraph cfg, Body body, IMethodSymbol method, ContractSet contracts, INamedTypeSymbol notifierType)
    {
        var states = new State?[cfg.Blocks.Length];
        states[0] = new State(ImmutableHashSet.Create<ISymbol>(SymbolEqualityComparer.Default), ImmutableList<InsertPoint>.Empty,
            ImmutableHashSet.Create<string>(StringComparer.Ordinal), false, ImmutableList<IMethodSymbol>.Empty);
        var work = new Queue<int>();
        work.Enqueue(0);
        int budget = cfg.Blocks.Length * 20 + 50;
        var steps = new StepCache(cfg);
        while (work.Count > 0 && budget-- > 0)
        {
            int b = work.Dequeue();
            var s = Transfer(steps.Of(b), states[b]!, body, method, contracts, notifierType, record: false);
            foreach (var succ in new[] { cfg.Blocks[b].FallThroughSuccessor, cfg.Blocks[b].ConditionalSuccessor })
            {
                if (succ?.Destination is not { } d) continue;
                // A branch leaving a try runs its finally first: straight through its blocks (a remove or
                // an unlock there counts; a conditional one counts too, which can only silence the rule).
                // The finally's own blocks are also entered with that state, so a teardown inside a finally is
                // recorded with the lock/remove state of the path that runs it.
                var through = s;
                foreach (var f in succ.FinallyRegions)
                {
                    Enter(f.FirstBlockOrdinal, through);
                    for (int fb = f.FirstBlockOrdinal; fb <= f.LastBlockOrdinal; fb++)
                        through = Transfer(steps.Of(fb), through, body, method, contracts, notifierType, record: false);
                }
                Enter(d.Ordinal, through);
            }
        }
        for (int b = 0; b < states.Length; b++)
            if (states[b] is { } s) Transfer(steps.Of(b), s, body, method, contracts, notifierType, record: true);

        void Enter(int ordinal, State through)
        {
            var old = states[ordinal];
            var merged = old == null ? through : State.Join(old, through);
            if (old != null && old.Same(merged)) return;
            states[ordinal] = merged;
            work.Enqueue(ordinal);
        }
    }

    /// <summary>
    /// Per block, the operations <see cref="Step"/> acts on (assignments and calls), in evaluation order:
    /// collected once per block instead of on every visit of the fixpoint.
    /// </summary>
    private sealed class StepCache(ControlFlowGraph cfg)
    {
        private readonly List<IOperation>?[] _steps = new List<IOperation>?[cfg.Blocks.Length];

        public List<IOperation> Of(int ordinal)
        {
            if (_steps[ordinal] is { } known) return known;
            var block = cfg.Blocks[ordinal];
            var list = new List<IOperation>();
            foreach (var root in block.Operations) Collect(root, list);
            if (block.BranchValue != null) Collect(block.BranchValue, list);
            return _steps[ordinal] = list;
        }

        private static void Collect(IOperation op, List<IOperation> into)
        {
            foreach (var c in op.ChildOperations)
                if (c is not (IAnonymousFunctionOperation or ILocalFunctionOperation or IFlowAnonymousFunctionOperation)) Collect(c, into);
            if (op is ISimpleAssignmentOperation or IInvocationOperation) into.Add(op);
        }
    }

    private static State Transfer(List<IOperation> steps, State s, Body body, IMethodSymbol method, ContractSet contracts, INamedTypeSymbol notifierType, bool record)
    {
        foreach (var op in steps)
            s = Step(op, s, body, method, contracts, notifierType, record);
        return s;
    }

    private static State Step(IOperation op, State s, Body body, IMethodSymbol method, ContractSet contracts, INamedTypeSymbol notifierType, bool record)
    {
        if (record && method.MethodKind != MethodKind.Constructor && TeardownOf(op, method) is { } dead)
            body.Teardowns.Add(new StatePoint(dead, null, op.Syntax.GetLocation(), s.Held, s.Removed, [.. s.Calls]));
        switch (op)
        {
            case ISimpleAssignmentOperation a when OwnMember(a.Target, method) is { } f:
                if (record)
                    foreach (var i in s.Inserts) body.Late.Add(new LateStore(i, f, null, a.Syntax.GetLocation()));
                return new State(s.Assigned.Add(f), s.Inserts, s.Held, s.Removed, s.Calls);
            case IInvocationOperation inv:
            {
                var m = inv.TargetMethod;
                var loc = inv.Syntax.GetLocation();
                var contract = contracts.For(m);
                bool onNotifier = SymbolEqualityComparer.Default.Equals(m.ContainingType, notifierType);
                if (contract.InsertsNotifier)
                {
                    // IntervalNotifier.Insert: the ops it was built with. Elsewhere (a DSL driver's generated Attach) the
                    // declaring type's callbacks — the user's [OnInvalidate]/[OnRelease] — go live.
                    var (receiver, localOps) = onNotifier ? ReceiverOf(inv, method, notifierType) : (null, [m.ContainingType]);
                    var point = new InsertPoint(null, receiver, localOps, loc, s.Assigned);
                    if (record) body.Inserts.Add(point);
                    return new State(s.Assigned, s.Inserts.Add(point), s.Held, false, s.Calls);
                }
                if (contract.RemovesNotifier) return new State(s.Assigned, s.Inserts, s.Held, true, s.Calls);
                if (onNotifier) return s;
                var held = s.Held;
                foreach (var e in contract.LockEffects)
                {
                    if (MethodFlow.Resolve(contracts, e.Target, m, inv) is not { } key) continue;
                    // A try-acquire is held only on its success branch, which this coarse state does not follow.
                    if (e.Kind is LockEffectKind.Acquire or LockEffectKind.AcquireShared) held = held.Add(key);
                    else if (e.Kind == LockEffectKind.Release) held = held.Remove(key);
                }
                if (!IsSource(m, contracts.Compilation)) return held == s.Held ? s : new State(s.Assigned, s.Inserts, held, s.Removed, s.Calls);
                var callee = m.OriginalDefinition;
                if (record)
                {
                    body.CallStates.Add(new StatePoint(null, callee, loc, s.Held, s.Removed, [.. s.Calls]));
                    if (OwnCall(inv))
                        foreach (var i in s.Inserts) body.Late.Add(new LateStore(i, null, callee, loc));
                }
                var inserts = OwnCall(inv) ? s.Inserts.Add(new InsertPoint(callee, null, ImmutableArray<ITypeSymbol>.Empty, loc, s.Assigned)) : s.Inserts;
                return new State(s.Assigned, inserts, held, s.Removed, s.Calls.Contains(callee, SymbolEqualityComparer.Default) ? s.Calls : s.Calls.Add(callee));
            }
            default:
                return s;
        }
    }

    /// <summary>The notifier's home (a member) or, for a local, the ops types of the notifiers created into it here.</summary>
    private static (ISymbol?, ImmutableArray<ITypeSymbol>) ReceiverOf(IInvocationOperation inv, IMethodSymbol method, INamedTypeSymbol notifierType)
    {
        switch (Unwrap(inv.Instance))
        {
            case IFieldReferenceOperation f: return (f.Field.OriginalDefinition, ImmutableArray<ITypeSymbol>.Empty);
            case IPropertyReferenceOperation p: return (p.Property.OriginalDefinition, ImmutableArray<ITypeSymbol>.Empty);
            case ILocalReferenceOperation l:
                var ops = ImmutableArray.CreateBuilder<ITypeSymbol>();
                var root = inv as IOperation;
                while (root.Parent != null) root = root.Parent;
                foreach (var op in root.Descendants())
                {
                    IOperation? value = op switch
                    {
                        IVariableDeclaratorOperation d when SymbolEqualityComparer.Default.Equals(d.Symbol, l.Local) => d.Initializer?.Value,
                        ISimpleAssignmentOperation a when Unwrap(a.Target) is ILocalReferenceOperation t && SymbolEqualityComparer.Default.Equals(t.Local, l.Local) => a.Value,
                        _ => null,
                    };
                    if (Unwrap(value) is IObjectCreationOperation c && OpsOf(c, notifierType) is { } o) ops.Add(o);
                }
                return (null, ops.ToImmutable());
            default:
                return (null, ImmutableArray<ITypeSymbol>.Empty);
        }
    }

    // ---- compilation end -----------------------------------------------------------------------

    private sealed class Verdict
    {
        private readonly Dictionary<IMethodSymbol, Body> _bodies = new(SymbolEqualityComparer.Default);
        private readonly Dictionary<ISymbol, List<ITypeSymbol>> _creations = new(SymbolEqualityComparer.Default);
        private readonly Dictionary<IMethodSymbol, List<(Body Caller, StatePoint Site)>> _callers = new(SymbolEqualityComparer.Default);
        private readonly IMethodSymbol _invalidate;
        private readonly HashSet<(int, string?)> _reported = [];
        private Action<Diagnostic> _sink = _ => { };

        private readonly ConcurrentDictionary<ISymbol, bool> _initialised;

        private readonly ContractSet _contracts;

        /// <summary>
        /// The bodies of each type, in <see cref="_bodies"/>' order: a teardown looks only at its own type's inserts and
        /// constructors (it used to scan every body of the compilation per teardown and per field).
        /// </summary>
        private readonly Dictionary<ITypeSymbol, List<Body>> _byType = new(SymbolEqualityComparer.Default);

        // Memos of pure questions over the finished body set (the same callback and field are asked once per teardown site).
        private readonly Dictionary<(IMethodSymbol, ISymbol), bool> _callbackReads = new(SymbolPairComparer.Instance);
        private readonly Dictionary<IMethodSymbol, HashSet<string>> _takes = new(SymbolEqualityComparer.Default);

        public Verdict(IEnumerable<Body> bodies, IEnumerable<(ISymbol Target, ITypeSymbol Ops)> creations, ConcurrentDictionary<ISymbol, bool> initialised, IMethodSymbol invalidate, ContractSet contracts)
        {
            _invalidate = invalidate;
            _contracts = contracts;
            _initialised = initialised;
            var list = new List<Body>(bodies);
            list.Sort((a, b) => string.CompareOrdinal(SymbolNames.Of(a.Method), SymbolNames.Of(b.Method)));
            foreach (var b in list)
            {
                _bodies[b.Method] = b;
                if (!_byType.TryGetValue(b.Method.ContainingType, out var same)) _byType[b.Method.ContainingType] = same = [];
                same.Add(b);
            }
            foreach (var (target, ops) in creations)
            {
                if (!_creations.TryGetValue(target, out var l)) _creations[target] = l = [];
                if (!l.Contains(ops, SymbolEqualityComparer.Default)) l.Add(ops);
            }
            foreach (var b in list)
                foreach (var site in b.CallStates)
                {
                    if (!_callers.TryGetValue(site.Callee!, out var l)) _callers[site.Callee!] = l = [];
                    l.Add((b, site));
                }
        }

        public void Run(Action<Diagnostic> sink)
        {
            _sink = sink;
            foreach (var b in _bodies.Values)
                foreach (var late in b.Late) CheckLate(b, late);
            foreach (var b in _bodies.Values)
                foreach (var t in b.Teardowns) CheckTeardown(b, t, t.Field!, 0, null);
        }

        private IEnumerable<ITypeSymbol> OpsOf(InsertPoint i)
        {
            if (i.Callee != null) return InsertOps(i.Callee, 0);
            if (i.Receiver != null) return _creations.TryGetValue(i.Receiver, out var l) ? l : [];
            return i.LocalOps;
        }

        private readonly Dictionary<IMethodSymbol, List<ITypeSymbol>> _insertOps = new(SymbolEqualityComparer.Default);

        /// <summary>Ops types of the notifiers a method may insert, itself or through its callees (memoised; a cycle sees the partial list).</summary>
        private List<ITypeSymbol> InsertOps(IMethodSymbol m, int depth)
        {
            if (_insertOps.TryGetValue(m, out var known)) return known;
            var result = new List<ITypeSymbol>();
            if (depth > 8 || !_bodies.TryGetValue(m, out var b)) return result;
            _insertOps[m] = result;
            foreach (var i in b.Inserts) foreach (var o in OpsOf(i)) if (!result.Contains(o, SymbolEqualityComparer.Default)) result.Add(o);
            foreach (var c in b.Callees) foreach (var o in InsertOps(c, depth + 1)) if (!result.Contains(o, SymbolEqualityComparer.Default)) result.Add(o);
            return result;
        }

        /// <summary>
        /// The callbacks an inserted notifier of this ops type runs: its invalidate, and for a DSL driver (whose invalidate is
        /// generated, not analysed) the user's <c>[OnInvalidate]</c> and <c>[OnRelease]</c> methods it calls.
        /// </summary>
        private IEnumerable<IMethodSymbol> LateReaders(ITypeSymbol ops)
        {
            if (Callback(ops) is { } cb && _bodies.ContainsKey(cb.OriginalDefinition)) yield return cb;
            if (!HasAttribute(ops, "HmmDriverAttribute")) yield break;
            foreach (var member in ops.GetMembers())
                if (member is IMethodSymbol m && (HasAttribute(m, "OnInvalidateAttribute") || HasAttribute(m, "OnReleaseAttribute"))) yield return m;
        }

        /// <summary>The ops type's invalidate callback.</summary>
        private IMethodSymbol? Callback(ITypeSymbol ops) => ops.FindImplementationForInterfaceMember(_invalidate) as IMethodSymbol;

        private void Closure(IMethodSymbol m, int depth, Func<Body, bool> visit, HashSet<IMethodSymbol> seen)
        {
            if (depth > 8 || !seen.Add(m) || !_bodies.TryGetValue(m, out var b) || visit(b)) return;
            foreach (var c in b.Callees) Closure(c, depth + 1, visit, seen);
        }

        private bool CallbackReads(IMethodSymbol cb, ISymbol field)
        {
            if (_callbackReads.TryGetValue((cb, field), out bool known)) return known;
            bool found = false;
            Closure(cb, 0, b => found = found || b.Reads.Contains(field), new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default));
            return _callbackReads[(cb, field)] = found;
        }

        private bool MayStore(IMethodSymbol m, ISymbol field)
        {
            bool found = false;
            Closure(m, 0, b => found = found || b.Stores.Contains(field), new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default));
            return found;
        }

        private bool MayRemove(IMethodSymbol m)
        {
            bool found = false;
            Closure(m, 0, b => found = found || b.Removes, new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default));
            return found;
        }

        private HashSet<string> Takes(IMethodSymbol cb)
        {
            if (_takes.TryGetValue(cb, out var known)) return known;
            var keys = new HashSet<string>(StringComparer.Ordinal);
            Closure(cb, 0, b => { keys.UnionWith(b.Takes); return false; }, new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default));
            return _takes[cb] = keys;
        }

        /// <summary>Whether the object's construction already initialised the field (an initializer, or a constructor's store).</summary>
        private bool Constructed(ISymbol field)
        {
            if (_initialised.ContainsKey(field)) return true;
            if (!_byType.TryGetValue(field.ContainingType, out var same)) return false;
            foreach (var b in same)
                if (b.Method.MethodKind == MethodKind.Constructor && MayStore(b.Method, field)) return true;
            return false;
        }

        private void CheckLate(Body body, LateStore late)
        {
            foreach (var ops in OpsOf(late.Insert))
            foreach (var cb in LateReaders(ops))
            {
                var fields = late.Field != null ? [late.Field] : CandidateFields(late.Callee!, cb);
                foreach (var f in fields)
                {
                    if (late.Insert.AssignedBefore.Contains(f) || !CallbackReads(cb, f)) continue;
                    // Initialised means: before the insert, or already by construction when a later method inserts
                    // (a store after that insert republishes a live value; the callback saw a valid one).
                    if (_initialised.ContainsKey(f) || (body.Method.MethodKind != MethodKind.Constructor && Constructed(f))) continue;
                    if (late.Field == null && !MayStore(late.Callee!, f)) continue;
                    string via = late.Field == null ? "'" + late.Callee!.Name + "' assigns '" + f.Name + "'" : "'" + f.Name + "' is assigned here";
                    // The insert is an additional location: the code fix moves a direct store in front of it.
                    Emit(late.Location, late.Field != null && late.Insert.Callee == null ? late.Insert.Location : null, via + " after the notifier inserted at line " + Line(late.Insert.Location) + " went live, but its callback '"
                        + cb.ContainingType.Name + "." + cb.Name + "' reads it: an invalidation in between sees it unset");
                    return;
                }
            }
        }

        private List<ISymbol> CandidateFields(IMethodSymbol callee, IMethodSymbol cb)
        {
            var result = new List<ISymbol>();
            Closure(callee, 0, b => { foreach (var s in b.Stores) if (!result.Contains(s, SymbolEqualityComparer.Default)) result.Add(s); return false; },
                new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default));
            result.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
            return result;
        }

        /// <summary>A teardown of <paramref name="field"/> at <paramref name="site"/> of <paramref name="body"/>: fine under U or after a remove; a private helper's callers decide.</summary>
        private void CheckTeardown(Body body, StatePoint site, ISymbol field, int depth, string? chain)
        {
            if (depth > 8 || site.Removed) return;
            foreach (var e in site.Earlier) if (MayRemove(e)) return;
            // The callbacks of notifiers inserted by this type that read the field.
            var type = field.ContainingType;
            IMethodSymbol? reader = null;
            foreach (var b in _byType.TryGetValue(type, out var same) ? same : [])
            {
                foreach (var i in b.Inserts)
                    foreach (var ops in OpsOf(i))
                        if (Callback(ops) is { } cb && CallbackReads(cb, field))
                        {
                            if (SymbolEqualityComparer.Default.Equals(cb, body.Method)) return;   // the callback itself runs under its own lock
                            foreach (var k in Takes(cb)) if (site.Held.Contains(k)) return;
                            reader ??= cb;
                        }
            }
            // A DSL driver attached anywhere in the compilation ([InsertsNotifier] Attach): its [OnInvalidate] methods run
            // under U, taken by the generated invalidate, while the notifier is live.
            if (type is INamedTypeSymbol driver && HasAttribute(driver, "HmmDriverAttribute") && Attached(driver))
            {
                string? u = MethodFlow.UpdateLockOf(_contracts, driver);
                foreach (var member in driver.GetMembers())
                {
                    if (member is not IMethodSymbol cb || !HasAttribute(cb, "OnInvalidateAttribute") || !CallbackReads(cb, field)) continue;
                    if (SymbolEqualityComparer.Default.Equals(cb, body.Method)) return;
                    if (u != null && site.Held.Contains(u)) return;
                    foreach (var k in Takes(cb)) if (site.Held.Contains(k)) return;
                    reader ??= cb;
                }
            }
            if (reader == null) return;
            var m = body.Method;
            if (depth == 0 && (reader.Equals(m, SymbolEqualityComparer.Default) || CallbackReachable(reader, m))) return;   // a helper of the callback
            if (m.DeclaredAccessibility == Accessibility.Private && m.MethodKind == MethodKind.Ordinary)
            {
                if (!_callers.TryGetValue(m, out var callers)) return;
                foreach (var (caller, callSite) in callers)
                    CheckTeardown(caller, callSite, field, depth + 1, chain == null ? "'" + m.Name + "'" : "'" + m.Name + "' → " + chain);
                return;
            }
            string what = chain == null ? "'" + field.Name + "' is torn down here" : "Calling " + chain + " tears down '" + field.Name + "'";
            Emit(site.Location, null, what + " while the notifier is still inserted and without the lock its callback '" + reader.ContainingType.Name + "." + reader.Name
                + "' takes: a concurrent invalidation uses it after teardown; remove the notifier first, or tear down under that lock");
        }

        private HashSet<ITypeSymbol>? _attached;

        /// <summary>Whether some body inserts a notifier whose callbacks are <paramref name="driver"/>'s (calls its generated Attach).</summary>
        private bool Attached(INamedTypeSymbol driver)
        {
            if (_attached == null)
            {
                _attached = new HashSet<ITypeSymbol>(SymbolEqualityComparer.Default);
                foreach (var b in _bodies.Values)
                    foreach (var i in b.Inserts)
                        foreach (var o in i.LocalOps) _attached.Add(o);
            }
            return _attached.Contains(driver);
        }

        private bool CallbackReachable(IMethodSymbol cb, IMethodSymbol m)
        {
            bool found = false;
            Closure(cb, 0, b => found = found || SymbolEqualityComparer.Default.Equals(b.Method, m), new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default));
            return found;
        }

        private static int Line(Location l) => l.GetLineSpan().StartLinePosition.Line + 1;

        private void Emit(Location location, Location? insert, string message)
        {
            if (!_reported.Add((location.SourceSpan.Start, location.SourceTree?.FilePath))) return;
            _sink(Diagnostic.Create(HmmRules.NotifierFieldLifetime, location, insert == null ? [] : [insert], message));
        }
    }

    /// <summary>Pairs of symbols compared as Roslyn compares symbols (the memo key of CallbackReads).</summary>
    private sealed class SymbolPairComparer : IEqualityComparer<(IMethodSymbol, ISymbol)>
    {
        public static readonly SymbolPairComparer Instance = new();

        public bool Equals((IMethodSymbol, ISymbol) x, (IMethodSymbol, ISymbol) y) =>
            SymbolEqualityComparer.Default.Equals(x.Item1, y.Item1) && SymbolEqualityComparer.Default.Equals(x.Item2, y.Item2);

        public int GetHashCode((IMethodSymbol, ISymbol) obj) =>
            SymbolEqualityComparer.Default.GetHashCode(obj.Item1) * 31 + SymbolEqualityComparer.Default.GetHashCode(obj.Item2);
    }
}
