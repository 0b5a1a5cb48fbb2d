using System.Collections.Concurrent;
using System.Collections.Immutable;
using Hmm.Analyzers.Rules;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace Hmm.Analyzers.Flow;

/// <summary>
/// MIG-R06 (HMM1040): a destination page reaches the commit step (migrate_vma_pages) although
/// the copy into it failed — the failed entry was not cleared from <c>dst[]</c>, or it was written
/// there after the copy failed. The CPU then reads whatever the page held once finalize replaces
/// the migration entries.
/// </summary>
/// <remarks>
/// A flow pass of its own over the control-flow graph (the lock/reference engine tracks locks and
/// owned references, not array contents). Facts are kept per destination pfn, named by the local
/// or parameter it lives in: <c>dst[i] = MigratePfn.FromPfn(d)</c> exposes <c>d</c>,
/// <c>copy.TryCopy([new PageCopy(s, d)])</c> returning false fails <c>d</c> (a batch whose
/// members are not visible fails every exposed pfn), overwriting a <c>dst</c> entry or clearing
/// the array un-exposes, and assigning <c>d</c> anew starts a new page. Each pfn keeps the set of
/// states its paths may be in (neither, exposed, failed, both), so a loop that skips a failed page
/// in one iteration and exposes a good one in the next is not confused with a path doing both.
/// A committing call reached with a pfn that may be both exposed and failed is reported, with the
/// failing copy's line. Helpers are summarised at compilation end (a helper that may return with
/// a failed destination still exposed, or that fails or exposes a pfn its caller passed in) and
/// their effect applied at each call, so a failure two helpers below the commit is found.
/// Everything the pass cannot see (a copy status stored in a field, returned, or combined) is
/// treated as handled: it reports only what it can show.
/// </remarks>
internal static class CopyExposure
{
    private const byte Neither = 1, Exposed = 2, Failed = 4, Both = 8;

    private enum Role { None, DestinationPfn, CopyMayFail, Commits, Clear }

    /// <summary>Where a copy failed (and in which method, for the message).</summary>
    private sealed class Origin(Location location, string method)
    {
        public Location Location { get; } = location;
        public string Method { get; } = method;
    }

    /// <summary>What a helper leaves behind for its caller.</summary>
    private sealed class Summary
    {
        public static readonly Summary Empty = new();
        /// <summary>The helper may return with a failed destination still exposed.</summary>
        public Origin? Leak;
        /// <summary>Parameters whose pfn the helper's failed copy leaves failed (not exposed by it).</summary>
        public Dictionary<string, Origin>? FailsParam;
        /// <summary>Parameters whose pfn the helper writes into dst[] (after a good copy, on every path that writes).</summary>
        public HashSet<string>? ExposesParam;
        public bool MayClear;
        /// <summary>Parameters naming a device page the helper initialises (MIG-R10), with where.</summary>
        public Dictionary<string, Origin>? InitsParam;

        public bool Fails => Leak != null || FailsParam != null;
    }

    private sealed class State(ImmutableDictionary<string, byte> keys, ImmutableDictionary<string, Origin> origins, ImmutableDictionary<ILocalSymbol, IInvocationOperation> pending) : IEquatable<State>
    {
        public static readonly State Empty = new(ImmutableDictionary<string, byte>.Empty.WithComparers(StringComparer.Ordinal),
            ImmutableDictionary<string, Origin>.Empty.WithComparers(StringComparer.Ordinal),
            ImmutableDictionary<ILocalSymbol, IInvocationOperation>.Empty.WithComparers(SymbolEqualityComparer.Default));

        public ImmutableDictionary<string, byte> Keys { get; } = keys;
        public ImmutableDictionary<string, Origin> Origins { get; } = origins;
        /// <summary>Locals holding the status of a copy that may fail, refined when a branch tests them.</summary>
        public ImmutableDictionary<ILocalSymbol, IInvocationOperation> Pending { get; } = pending;

        public byte Of(string key) => Keys.TryGetValue(key, out var m) ? m : Neither;

        public State With(ImmutableDictionary<string, byte> keys, ImmutableDictionary<string, Origin>? origins = null) => new(keys, origins ?? Origins, Pending);

        public State WithPending(ImmutableDictionary<ILocalSymbol, IInvocationOperation> pending) => new(Keys, Origins, pending);

        public static State Join(State a, State b)
        {
            if (ReferenceEquals(a, b)) return a;
            var keys = a.Keys;
            foreach (var kv in b.Keys) keys = keys.SetItem(kv.Key, (byte)(a.Of(kv.Key) | kv.Value));
            foreach (var kv in a.Keys) if (!b.Keys.ContainsKey(kv.Key)) keys = keys.SetItem(kv.Key, (byte)(kv.Value | Neither));
            var origins = a.Origins;
            foreach (var kv in b.Origins) if (!origins.ContainsKey(kv.Key)) origins = origins.Add(kv.Key, kv.Value);
            var pending = a.Pending;
            foreach (var kv in b.Pending) if (!pending.ContainsKey(kv.Key)) pending = pending.Add(kv.Key, kv.Value);
            return new State(keys, origins, pending);
        }

        public bool Equals(State? other)
        {
            if (other is null) return false;
            if (ReferenceEquals(this, other)) return true;
            if (Keys.Count != other.Keys.Count || Pending.Count != other.Pending.Count || Origins.Count != other.Origins.Count) return false;
            foreach (var kv in Keys) if (!other.Keys.TryGetValue(kv.Key, out var m) || m != kv.Value) return false;
            foreach (var kv in Pending) if (!other.Pending.ContainsKey(kv.Key)) return false;
            return true;
        }

        public override bool Equals(object? obj) => obj is State s && Equals(s);

        public override int GetHashCode() => Keys.Count ^ (Pending.Count << 8);
    }

    public static void Register(Compilation compilation, ContractSet contracts, OperationDispatch operations)
    {
        if (RuntimeTypes.Of(compilation).Get(DevicePageRules.DestinationPfn) is not { } destination
            || RuntimeTypes.Of(compilation).Get(DevicePageRules.CopyMayFail) is not { } mayFail
            || RuntimeTypes.Of(compilation).Get(DevicePageRules.CommitsDestinations) is not { } commits) return;
        var pageInit = RuntimeTypes.Of(compilation).Get(DevicePageRules.PageInit);
        bool IsPageInit(IParameterSymbol? p)
        {
            if (p == null || pageInit == null) return false;
            foreach (var a in p.OriginalDefinition.GetAttributes())
                if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, pageInit)) return true;
            return false;
        }
        var roles = new ConcurrentDictionary<IMethodSymbol, Role>(SymbolEqualityComparer.Default);
        Role RoleOf(IMethodSymbol m) => roles.GetOrAdd(m.OriginalDefinition, d =>
        {
            foreach (var a in d.GetAttributes())
            {
                if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, destination)) return Role.DestinationPfn;
                if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, mayFail)) return Role.CopyMayFail;
                if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, commits)) return Role.Commits;
            }
            return d.Name is "Clear" or "Fill" && (d.ContainingType.SpecialType == SpecialType.System_Array || d.ContainingType.Name == "Span")
                ? Role.Clear : Role.None;
        });
        var bodies = new ConcurrentDictionary<IMethodSymbol, (ControlFlowGraph Cfg, bool Commits)>(SymbolEqualityComparer.Default);
        operations.OnBlock(b =>
        {
            if (b.OwningSymbol is not IMethodSymbol method) return;
            IOperation? body = null;
            foreach (var block in b.OperationBlocks)
                if (block is IMethodBodyBaseOperation or IBlockOperation) { body = block; break; }
            if (body == null) return;
            bool relevant = false, commitsHere = false;
            foreach (var p in method.Parameters) relevant |= CarriesPages(p.Type, contracts);
            foreach (var op in body.Descendants())
            {
                if (op is not IInvocationOperation inv) continue;
                var role = RoleOf(inv.TargetMethod);
                if (role is Role.DestinationPfn or Role.CopyMayFail) relevant = true;
                if (role == Role.Commits) relevant = commitsHere = true;
                foreach (var a in inv.Arguments) if (IsPageInit(a.Parameter)) relevant = true;
                if (!relevant && SymbolNames.HasSource(inv.TargetMethod))
                    // A pfn handed to a helper (which may initialise it, MIG-R10) or the migration's arrays and engine.
                    foreach (var a in inv.Arguments) relevant |= a.Value.Type is { } t && (CarriesPages(t, contracts) || t.SpecialType == SpecialType.System_UInt64);
            }
            if (relevant) bodies[method.OriginalDefinition] = (b.GetControlFlowGraph(body), commitsHere);
        });
        operations.OnCompilationEnd(end =>
        {
            var pass = new Pass(bodies, RoleOf, IsPageInit, end.CancellationToken);
            var methods = new List<IMethodSymbol>(bodies.Keys);
            methods.Sort((x, y) => string.CompareOrdinal(SymbolNames.Of(x), SymbolNames.Of(y)));
            foreach (var m in methods)
                pass.Report(m, end.ReportDiagnostic);
        });
    }

    /// <summary>Types through which a helper reaches a migration's pages: the MigrateVma, pfn arrays and spans, the copy engine.</summary>
    private static bool CarriesPages(ITypeSymbol type, ContractSet contracts)
    {
        if (contracts.Is(type, KnownNames.MigrateVma)) return true;
        if (type is IArrayTypeSymbol { ElementType.SpecialType: SpecialType.System_UInt64 }) return true;
        if (type is INamedTypeSymbol { Name: "Span" or "ReadOnlySpan", TypeArguments.Length: 1 } n
            && n.TypeArguments[0].SpecialType == SpecialType.System_UInt64) return true;
        return type.Name == "CopyEngine" && SymbolNames.Of(type.ContainingNamespace) == "Hmm.Runtime.Devices";
    }

    /// <summary>Runs the pass over stored bodies: summaries on demand (callees first), reports in committing bodies.</summary>
    private sealed class Pass(ConcurrentDictionary<IMethodSymbol, (ControlFlowGraph Cfg, bool Commits)> bodies, Func<IMethodSymbol, Role> roleOf,
        Func<IParameterSymbol?, bool> isPageInit, CancellationToken cancel)
    {
        private readonly Dictionary<IMethodSymbol, Summary> _summaries = new(SymbolEqualityComparer.Default);
        private readonly HashSet<IMethodSymbol> _running = new(SymbolEqualityComparer.Default);

        public void Report(IMethodSymbol method, Action<Diagnostic> sink) => new Walk(this, method, bodies[method].Cfg, sink).Run();

        public Summary SummaryOf(IMethodSymbol method)
        {
            method = method.OriginalDefinition;
            if (_summaries.TryGetValue(method, out var s)) return s;
            if (!bodies.TryGetValue(method, out var body) || !_running.Add(method)) return Summary.Empty;   // recursion: no summary
            try
            {
                var walk = new Walk(this, method, body.Cfg, null);
                s = walk.Run();
            }
            finally { _running.Remove(method); }
            _summaries[method] = s;
            return s;
        }

        public Role RoleOf(IMethodSymbol m) => roleOf(m);

        public bool IsPageInit(IParameterSymbol? p) => isPageInit(p);

        public CancellationToken Cancel => cancel;
    }

    /// <summary>One walk of one body to a fixpoint; reports (when given a sink) in a final pass over the stable states.</summary>
    private sealed class Walk(Pass pass, IMethodSymbol method, ControlFlowGraph cfg, Action<Diagnostic>? sink)
    {
        private readonly Dictionary<CaptureId, IOperation> _captures = [];
        private readonly HashSet<int> _reported = [];
        private bool _report;
        private bool _cleared;

        public Summary Run()
        {
            var input = new State?[cfg.Blocks.Length];
            input[0] = State.Empty;
            var work = new Queue<int>();
            var queued = new bool[input.Length];
            work.Enqueue(0);
            queued[0] = true;
            int budget = input.Length * 40 + 100;
            while (work.Count > 0 && budget-- > 0)
            {
                pass.Cancel.ThrowIfCancellationRequested();
                int b = work.Dequeue();
                queued[b] = false;
                Process(cfg.Blocks[b], input[b]!, (dest, s) =>
                {
                    var old = input[dest];
                    var merged = old == null ? s : State.Join(old, s);
                    if (old != null && old.Equals(merged)) return;
                    input[dest] = merged;
                    if (!queued[dest]) { queued[dest] = true; work.Enqueue(dest); }
                });
            }
            if (sink != null)
            {
                _report = true;
                for (int b = 0; b < input.Length; b++)
                    if (input[b] is { } s) Process(cfg.Blocks[b], s, (_, _) => { });
                _report = false;
            }
            return Summarize(input[input.Length - 1]);
        }

        private Summary Summarize(State? exit)
        {
            var s = new Summary { MayClear = _cleared };
            if (exit == null) return s;
            foreach (var kv in exit.Keys)
            {
                var origin = exit.Origins.TryGetValue(kv.Key, out var o) ? o : null;
                if (kv.Key.StartsWith(InitPrefix, StringComparison.Ordinal))
                {
                    if ((kv.Value & Exposed) != 0 && origin != null && kv.Key.StartsWith(InitPrefix + "P:", StringComparison.Ordinal))
                        (s.InitsParam ??= new(StringComparer.Ordinal))[kv.Key.Substring(InitPrefix.Length + 2)] = origin;
                    continue;
                }
                if ((kv.Value & Both) != 0 && origin != null) s.Leak ??= origin;
                if (!kv.Key.StartsWith("P:", StringComparison.Ordinal)) continue;
                string param = kv.Key.Substring(2);
                if ((kv.Value & (Failed | Both)) == Failed && (kv.Value & Exposed) == 0 && origin != null) (s.FailsParam ??= new(StringComparer.Ordinal))[param] = origin;
                if ((kv.Value & (Exposed | Failed | Both)) == Exposed) (s.ExposesParam ??= new(StringComparer.Ordinal)).Add(param);
            }
            return s;
        }

        private void Process(BasicBlock block, State state, Action<int, State> merge)
        {
            if (block.Kind == BasicBlockKind.Exit) return;
            foreach (var op in block.Operations) state = Statement(op, state);
            var bv = block.BranchValue;
            if (bv != null) state = Visit(bv, state);
            if (block.ConditionKind != ControlFlowConditionKind.None && bv != null && block.ConditionalSuccessor != null)
            {
                bool whenTrue = block.ConditionKind == ControlFlowConditionKind.WhenTrue;
                if (block.ConditionalSuccessor.Destination is { } c) merge(c.Ordinal, Refine(state, bv, whenTrue));
                if (block.FallThroughSuccessor?.Destination is { } f) merge(f.Ordinal, Refine(state, bv, !whenTrue));
                return;
            }
            if (block.FallThroughSuccessor?.Destination is { } d) merge(d.Ordinal, state);
        }

        /// <summary>A statement: a fallible call whose status is dropped may have failed.</summary>
        private State Statement(IOperation op, State state)
        {
            state = Visit(op, state);
            if (op is IExpressionStatementOperation es) op = es.Operation;
            var call = Unwrap(op is ISimpleAssignmentOperation { Target: IDiscardOperation } d ? d.Value : op) as IInvocationOperation;
            return call != null && MayFail(call) ? State.Join(state, FailEffect(state, call)) : state;
        }

        private bool MayFail(IInvocationOperation call) =>
            pass.RoleOf(call.TargetMethod) == Role.CopyMayFail
            || (SymbolNames.HasSource(call.TargetMethod) && pass.SummaryOf(call.TargetMethod).Fails);

        /// <summary>The state after <paramref name="call"/> reported failure.</summary>
        private State FailEffect(State state, IInvocationOperation call)
        {
            var here = new Origin(call.Syntax.GetLocation(), method.Name);
            if (pass.RoleOf(call.TargetMethod) == Role.CopyMayFail)
                return CopiedPfns(call) is { } keys ? Fail(state, keys, here) : FailAll(state, here);
            var s = pass.SummaryOf(call.TargetMethod);
            if (s.Leak != null)
            {
                string key = "H:" + s.Leak.Location.SourceSpan.Start;
                state = state.With(state.Keys.SetItem(key, Both), state.Origins.SetItem(key, s.Leak));
            }
            if (s.FailsParam != null)
                foreach (var a in call.Arguments)
                    if (a.Parameter != null && s.FailsParam.TryGetValue(a.Parameter.Name, out var o) && KeyOf(a.Value) is { } k)
                        state = Fail(state, [k], o);
            return state;
        }

        private State Fail(State state, IEnumerable<string> keys, Origin origin)
        {
            var map = state.Keys;
            var origins = state.Origins;
            foreach (var k in keys)
            {
                byte m = state.Of(k), n = 0;
                if ((m & Neither) != 0) n |= Failed;
                if ((m & Failed) != 0) n |= Failed;
                if ((m & (Exposed | Both)) != 0) n |= Both;
                map = map.SetItem(k, n);
                if (!origins.ContainsKey(k)) origins = origins.Add(k, origin);
            }
            return state.With(map, origins);
        }

        /// <summary>A batch whose members cannot be named failed: every pfn exposed so far was in it.</summary>
        private State FailAll(State state, Origin origin)
        {
            var exposed = new List<string>();
            foreach (var kv in state.Keys) if ((kv.Value & (Exposed | Both)) != 0 && !kv.Key.StartsWith(InitPrefix, StringComparison.Ordinal)) exposed.Add(kv.Key);
            return Fail(state, exposed, origin);
        }

        private static State Expose(State state, string key)
        {
            byte m = state.Of(key), n = 0;
            if ((m & (Neither | Exposed)) != 0) n |= Exposed;
            if ((m & (Failed | Both)) != 0) n |= Both;
            return state.With(state.Keys.SetItem(key, n));
        }

        private State ClearAll(State state)
        {
            if (!_report) _cleared = true;
            var map = state.Keys;
            foreach (var kv in state.Keys)
            {
                if (kv.Key.StartsWith(InitPrefix, StringComparison.Ordinal)) continue;
                byte n = 0;
                if ((kv.Value & (Neither | Exposed)) != 0) n |= Neither;
                if ((kv.Value & (Failed | Both)) != 0) n |= Failed;
                map = map.SetItem(kv.Key, n);
            }
            return state.With(map);
        }

        private static State Reassign(State state, string key)
        {
            // A new value: a new page — neither its copy nor its initialisation history carries over.
            string init = InitPrefix + key;
            if (!state.Keys.ContainsKey(key) && !state.Keys.ContainsKey(init)) return state;
            return state.With(state.Keys.Remove(key).Remove(init), state.Origins.Remove(key).Remove(init));
        }

        /// <summary>Key prefix of the MIG-R10 facts: "initialised by this code and not replaced since" (the Exposed bit).</summary>
        private const string InitPrefix = "I:";

        /// <summary>MIG-R10: initialising a page this code initialised before is reported; afterwards it is initialised (again).</summary>
        private State Init(State state, string key, IInvocationOperation inv, Origin where, string callee)
        {
            string k = InitPrefix + key;
            if (_report && (state.Of(k) & Exposed) != 0 && state.Origins.TryGetValue(k, out var first) && _reported.Add(inv.Syntax.SpanStart))
            {
                int line = first.Location.GetLineSpan().StartLinePosition.Line + 1;
                string at = first.Method == method.Name ? "" : " in '" + first.Method + "'";
                sink!(Diagnostic.Create(DevicePageRules.PageReinitialised, inv.Syntax.GetLocation(), [first.Location],
                    callee, key.Substring(key.IndexOf(':') + 1).Split('@')[0], callee.EndsWith("InitPage", StringComparison.Ordinal) ? "" : " (through its helper)", line.ToString(System.Globalization.CultureInfo.InvariantCulture) + at));
            }
            return state.With(state.Keys.SetItem(k, Exposed), state.Origins.SetItem(k, where));
        }

        private State Visit(IOperation op, State state)
        {
            switch (op)
            {
                case IFlowAnonymousFunctionOperation:
                case ILocalFunctionOperation:
                    return state;
                case IFlowCaptureOperation cap:
                    _captures[cap.Id] = cap.Value;
                    return Visit(cap.Value, state);
                case IInvocationOperation inv:
                    if (inv.Instance != null) state = Visit(inv.Instance, state);
                    foreach (var a in inv.Arguments) state = Visit(a.Value, state);
                    return Call(inv, state);
                case ISimpleAssignmentOperation asg:
                    state = Visit(asg.Value, state);
                    foreach (var c in asg.Target.ChildOperations) state = Visit(c, state);
                    return Assign(asg.Target, asg.Value, state, null);
                case IIncrementOrDecrementOperation inc:
                    foreach (var c in inc.ChildOperations) state = Visit(c, state);
                    return Unwrap(inc.Target) switch
                    {
                        ILocalReferenceOperation l => Reassign(state, LocalKey(l.Local)),
                        IParameterReferenceOperation p => Reassign(state, "P:" + p.Parameter.Name),
                        _ => state,
                    };
                case ICompoundAssignmentOperation ca:
                    state = Visit(ca.Value, state);
                    foreach (var c in ca.Target.ChildOperations) state = Visit(c, state);
                    return Assign(ca.Target, ca.Value, state, ca.OperatorKind);
                default:
                    foreach (var c in op.ChildOperations) state = Visit(c, state);
                    return state;
            }
        }

        private State Call(IInvocationOperation inv, State state)
        {
            var m = inv.TargetMethod;
            switch (pass.RoleOf(m))
            {
                case Role.Commits:
                    if (_report) CheckCommit(inv, state);
                    break;
                case Role.Clear:
                    state = ClearAll(state);
                    break;
            }
            foreach (var a in inv.Arguments)
            {
                if (a.Parameter?.RefKind == RefKind.Out && KeyOf(a.Value) is { } k) state = Reassign(state, k);
                else if (pass.IsPageInit(a.Parameter) && VariableKey(a.Value) is { } ik)
                    state = Init(state, ik, inv, new Origin(inv.Syntax.GetLocation(), method.Name), m.ContainingType.Name + "." + m.Name);
            }
            if (SymbolNames.HasSource(m) && !SymbolEqualityComparer.Default.Equals(m.OriginalDefinition, method.OriginalDefinition))
            {
                var s = pass.SummaryOf(m);
                if (s.MayClear) state = ClearAll(state);
                if (s.InitsParam != null)
                    foreach (var a in inv.Arguments)
                        if (a.Parameter != null && s.InitsParam.TryGetValue(a.Parameter.Name, out var io) && VariableKey(a.Value) is { } ik)
                            state = Init(state, ik, inv, io, m.ContainingType.Name + "." + m.Name);
                if (s.ExposesParam != null)
                    foreach (var a in inv.Arguments)
                        if (a.Parameter != null && s.ExposesParam.Contains(a.Parameter.Name) && KeyOf(a.Value) is { } k) state = Expose(state, k);
            }
            return state;
        }

        private void CheckCommit(IInvocationOperation inv, State state)
        {
            foreach (var kv in state.Keys)
            {
                if ((kv.Value & Both) == 0 || !state.Origins.TryGetValue(kv.Key, out var origin)) continue;
                if (!_reported.Add(inv.Syntax.SpanStart)) return;
                var m = inv.TargetMethod;
                int line = origin.Location.GetLineSpan().StartLinePosition.Line + 1;
                string where = origin.Method == method.Name ? "" : " in '" + origin.Method + "'";
                sink!(Diagnostic.Create(DevicePageRules.FailedCopyCommitted, inv.Syntax.GetLocation(), [origin.Location],
                    m.ContainingType.Name + "." + m.Name, line, where));
                return;
            }
        }

        private State Assign(IOperation target, IOperation value, State state, BinaryOperatorKind? compound)
        {
            target = Unwrap(target)!;
            if (target is IArrayElementReferenceOperation or IInlineArrayAccessOperation or IPropertyReferenceOperation { Property.IsIndexer: true }
                && target.Type?.SpecialType == SpecialType.System_UInt64)
            {
                bool any = false;
                foreach (var d in Resolved(value))
                    if (d is IInvocationOperation inv && pass.RoleOf(inv.TargetMethod) == Role.DestinationPfn && inv.Arguments.Length > 0)
                    {
                        any = true;
                        if (KeyOf(inv.Arguments[0].Value) is { } k) state = Expose(state, k);
                    }
                // Any other value overwrites the entry (|= only adds flags): the page it held is no longer handed over.
                return any || compound == BinaryOperatorKind.Or ? state : ClearAll(state);
            }
            if (target is ILocalReferenceOperation lr)
            {
                state = Reassign(state, LocalKey(lr.Local));
                var pending = state.Pending.Remove(lr.Local);
                if (compound == null && Unwrap(value) is IInvocationOperation call && MayFail(call)) pending = pending.SetItem(lr.Local, call);
                return pending == state.Pending ? state : state.WithPending(pending);
            }
            if (target is IParameterReferenceOperation pr) return Reassign(state, "P:" + pr.Parameter.Name);
            if (target is IPropertyReferenceOperation { Property.Name: "Dst" } or IFieldReferenceOperation { Type: IArrayTypeSymbol })
                return ClearAll(state);   // a fresh destination array
            return state;
        }

        private State Refine(State state, IOperation cond, bool outcome)
        {
            cond = Unwrap(cond)!;
            switch (cond)
            {
                case IUnaryOperation { OperatorKind: UnaryOperatorKind.Not } not:
                    return Refine(state, not.Operand, !outcome);
                case IInvocationOperation inv when MayFail(inv):
                    return outcome ? state : FailEffect(state, inv);
                case ILocalReferenceOperation lr when state.Pending.TryGetValue(lr.Local, out var call):
                    return outcome ? state : FailEffect(state, call);
                case IBinaryOperation { OperatorKind: BinaryOperatorKind.Equals or BinaryOperatorKind.NotEquals } bin:
                {
                    // x == true / x != false / false == x …: the outcome for x itself.
                    bool rightConst = bin.RightOperand.ConstantValue is { HasValue: true, Value: bool };
                    var constant = rightConst ? bin.RightOperand : bin.LeftOperand;
                    if (constant.ConstantValue is not { HasValue: true, Value: bool c }) return state;
                    bool equal = (bin.OperatorKind == BinaryOperatorKind.Equals) == outcome;
                    return Refine(state, rightConst ? bin.LeftOperand : bin.RightOperand, equal ? c : !c);
                }
                case IIsPatternOperation { Pattern: IConstantPatternOperation { Value.ConstantValue: { HasValue: true, Value: bool b } } } isp:
                    return Refine(state, isp.Value, outcome ? b : !b);
                default:
                    return state;
            }
        }

        /// <summary>The pfns a fallible copy's literal batch writes to (its PageCopy destinations), or null when they cannot be named.</summary>
        private List<string>? CopiedPfns(IInvocationOperation call)
        {
            if (call.Arguments.Length == 0) return null;
            var elements = Unwrap(call.Arguments[0].Value) switch
            {
                ICollectionExpressionOperation ce => ce.Elements,
                IArrayCreationOperation { Initializer: { } init } => init.ElementValues,
                _ => default,
            };
            if (elements.IsDefaultOrEmpty) return null;
            var keys = new List<string>();
            foreach (var e in elements)
            {
                if (Unwrap(e) is not IObjectCreationOperation create) return null;
                IOperation? dst = null;
                foreach (var a in create.Arguments) if (a.Parameter?.Name == "DstPfn") dst = a.Value;
                if (dst == null || KeyOf(dst) is not { } k) return null;
                keys.Add(k);
            }
            return keys;
        }

        /// <summary>The variable a pfn expression is about: the first local or parameter it reads (<c>d</c> in <c>BackingOf(d) + k</c>).</summary>
        private string? KeyOf(IOperation value)
        {
            foreach (var d in Resolved(value))
            {
                switch (d)
                {
                    case ILocalReferenceOperation l: return LocalKey(l.Local);
                    case IParameterReferenceOperation p: return "P:" + p.Parameter.Name;
                    case IDeclarationExpressionOperation { Expression: ILocalReferenceOperation dl }: return LocalKey(dl.Local);
                }
            }
            return null;
        }

        /// <summary>The variable a pfn argument is exactly (no arithmetic: <c>first + i</c> names a different page each time).</summary>
        private string? VariableKey(IOperation value) => Unwrap(value) switch
        {
            ILocalReferenceOperation l => LocalKey(l.Local),
            IDeclarationExpressionOperation { Expression: ILocalReferenceOperation dl } => LocalKey(dl.Local),
            IParameterReferenceOperation p => "P:" + p.Parameter.Name,
            _ => null,
        };

        private static string LocalKey(ILocalSymbol local) =>
            "L:" + local.Name + "@" + (local.Locations.Length > 0 ? local.Locations[0].SourceSpan.Start : 0);

        /// <summary>An operation and its descendants, through flow captures.</summary>
        private IEnumerable<IOperation> Resolved(IOperation op)
        {
            var stack = new Stack<IOperation>();
            stack.Push(op);
            int guard = 0;
            while (stack.Count > 0 && guard++ < 256)
            {
                var o = stack.Pop();
                if (o is IFlowCaptureReferenceOperation r && _captures.TryGetValue(r.Id, out var v)) { stack.Push(v); continue; }
                yield return o;
                var children = new List<IOperation>(o.ChildOperations);
                for (int i = children.Count - 1; i >= 0; i--) stack.Push(children[i]);
            }
        }

        private IOperation? Unwrap(IOperation? op)
        {
            for (int guard = 0; op != null && guard < 16; guard++)
            {
                switch (op)
                {
                    case IConversionOperation c: op = c.Operand; continue;
                    case IParenthesizedOperation p: op = p.Operand; continue;
                    case IFlowCaptureReferenceOperation r when _captures.TryGetValue(r.Id, out var v): op = v; continue;
                }
                break;
            }
            return op;
        }
    }
}
