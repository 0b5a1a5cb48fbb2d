using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

using Hmm.Analyzers.Rules;

namespace Hmm.Analyzers.Flow;

/// <summary>
/// The flow-sensitive pass over one body's control-flow graph: which locks are held (shared or
/// exclusive, on every path or on some), which references are owned, where the sequence
/// protocol stands, and whether the notifier range is known blockable — at every point, through
/// branches, loops, finally regions and throws. Runs to a fixpoint, then once more to record
/// facts and local diagnostics.
/// </summary>
internal sealed class MethodFlow
{
    private readonly ContractSet _contracts;
    private readonly ControlFlowGraph _cfg;
    private readonly MethodFacts _facts;
    private readonly MethodContract _self;
    private readonly Dictionary<CaptureId, IOperation> _captures = [];
    private readonly FlowState?[] _in;
    private readonly HashSet<(string, int)> _reported = [];
    private FlowState? _throwExit;
    private bool _report;

    public MethodFlow(ContractSet contracts, ControlFlowGraph cfg, MethodFacts facts)
    {
        _contracts = contracts;
        _cfg = cfg;
        _facts = facts;
        _self = contracts.For(facts.Method);
        _in = new FlowState?[cfg.Blocks.Length];
    }

    /// <summary>The state on entry: locks the method requires or its callback context holds.</summary>
    public static FlowState EntryState(ContractSet contracts, IMethodSymbol method, MethodContract self)
    {
        var locks = ImmutableArray.CreateBuilder<HeldLock>();
        var loc = method.Locations.Length > 0 ? method.Locations[0] : Location.None;
        foreach (var r in self.Requires)
            if (Resolve(contracts, r.Path, method, null) is { } k) locks.Add(new HeldLock(k, r.Shared, true, loc, true, false));
        foreach (var e in self.LockEffects)
            if (e.Kind == LockEffectKind.Release && Resolve(contracts, e.Target, method, null) is { } k) locks.Add(new HeldLock(k, false, true, loc, true, false));
        if ((self.Context & CallbackContext.MigrateToRam) != 0)
            foreach (var p in method.Parameters)
                if (contracts.Is(p.Type, KnownNames.VmFault) && Resolve(contracts, p.Name + ".Mm.MmapLock", method, null) is { } k && !locks.Any(l => l.Key == k))
                    locks.Add(new HeldLock(k, true, true, loc, true, false));
        var flags = FlowFlags.None;
        string? validation = null;
        if ((self.Context & (CallbackContext.Invalidate | CallbackContext.MirrorFault)) != 0 && (self.Context & CallbackContext.HandWrittenInvalidate) == 0
            && UpdateLockOf(contracts, method.ContainingType) is { } u)
        {
            locks.Add(new HeldLock(u, false, true, loc, true, false));
            validation = u;
        }
        if ((self.Context & CallbackContext.MirrorFault) != 0) flags |= FlowFlags.HasSnapshot;
        return new FlowState(locks.ToImmutable(), ImmutableArray<OwnedRef>.Empty, ImmutableArray<PendingTry>.Empty, flags, validation);
    }

    /// <summary>The lock class of a DSL driver's update lock U ([HmmDriver(UpdateLock = nameof(field))]).</summary>
    public static string? UpdateLockOf(ContractSet contracts, INamedTypeSymbol? type)
    {
        if (type == null) return null;
        foreach (var a in type.GetAttributes())
            if (contracts.Is(a.AttributeClass, KnownNames.HmmDriver))
                foreach (var n in a.NamedArguments)
                    if (n.Key == "UpdateLock" && n.Value.Value is string s && FindMember(type, s) is { } m) return MemberKey(m);
        return null;
    }

    public void Run()
    {
        var entry = EntryState(_contracts, _facts.Method, _self);
        // Fixpoint, then one recording pass over the stable states.
        _report = false;
        var work = new Queue<int>();
        var queued = new bool[_in.Length];
        _in[0] = entry;
        work.Enqueue(0);
        queued[0] = true;
        int budget = _in.Length * 40 + 100;
        while (work.Count > 0 && budget-- > 0)
        {
            int b = work.Dequeue();
            queued[b] = false;
            ProcessBlock(_cfg.Blocks[b], _in[b]!, (dest, s) =>
            {
                var old = _in[dest];
                var merged = old == null ? s : FlowState.Join(old, s);
                if (old != null && old.Equals(merged)) return;
                _in[dest] = merged;
                if (!queued[dest]) { queued[dest] = true; work.Enqueue(dest); }
            }, null);
        }
        _report = true;
        for (int b = 0; b < _in.Length; b++)
            if (_in[b] is { } s && InnermostFinally(_cfg.Blocks[b]) == null) ProcessBlock(_cfg.Blocks[b], s, (_, _) => { }, null);
        var exit = _in[_in.Length - 1];
        if (exit != null) CheckExit(exit);
        if (_throwExit != null) CheckExit(_throwExit);
    }

    private static ControlFlowRegion? InnermostFinally(BasicBlock block)
    {
        for (var r = block.EnclosingRegion; r != null; r = r.EnclosingRegion)
            if (r.Kind == ControlFlowRegionKind.Finally) return r;
        return null;
    }

    private void ProcessBlock(BasicBlock block, FlowState state, Action<int, FlowState> merge, ControlFlowRegion? region)
    {
        if (block.Kind == BasicBlockKind.Exit) return;
        if (InnermostFinally(block) != region) return;
        var entryState = state;
        foreach (var op in block.Operations) state = Transfer(op, state, false);
        var bv = block.BranchValue;
        if (bv != null) state = Transfer(bv, state, false);
        // Exceptions inside a try with catch handlers may reach each handler from anywhere in the try.
        for (var r = block.EnclosingRegion; r != null; r = r.EnclosingRegion)
            if (r.Kind == ControlFlowRegionKind.Try && r.EnclosingRegion?.Kind == ControlFlowRegionKind.TryAndCatch)
                foreach (var h in r.EnclosingRegion.NestedRegions)
                    if (h.Kind is ControlFlowRegionKind.Catch or ControlFlowRegionKind.FilterAndHandler) merge(h.FirstBlockOrdinal, entryState);

        if (block.ConditionKind != ControlFlowConditionKind.None && bv != null && block.ConditionalSuccessor != null)
        {
            bool whenTrue = block.ConditionKind == ControlFlowConditionKind.WhenTrue;
            Follow(block, block.ConditionalSuccessor, Refine(state, bv, whenTrue), merge);
            if (block.FallThroughSuccessor != null) Follow(block, block.FallThroughSuccessor, Refine(state, bv, !whenTrue), merge);
            return;
        }
        var ft = block.FallThroughSuccessor;
        if (ft == null) return;
        if (ft.Semantics == ControlFlowBranchSemantics.Return && bv != null)
        {
            CheckReturn(state, bv);
            if (RefKey(bv) is { } rk && state.FindRef(rk) is var ri && ri >= 0) state = state.WithRefs(state.Refs.RemoveAt(ri));
        }
        if (ft.Semantics is ControlFlowBranchSemantics.Throw or ControlFlowBranchSemantics.Rethrow)
        {
            bool caught = false;
            for (var r = block.EnclosingRegion; r != null; r = r.EnclosingRegion)
            {
                if (r.Kind == ControlFlowRegionKind.Try && r.EnclosingRegion?.Kind == ControlFlowRegionKind.TryAndCatch) { caught = true; break; }
                if (r.Kind == ControlFlowRegionKind.Try && r.EnclosingRegion?.Kind == ControlFlowRegionKind.TryAndFinally)
                    foreach (var f in r.EnclosingRegion.NestedRegions)
                        if (f.Kind == ControlFlowRegionKind.Finally) state = RunFinally(f, state);
            }
            if (!caught && _report && region == null) _throwExit = _throwExit == null ? state : FlowState.Join(_throwExit, state);
            return;
        }
        Follow(block, ft, state, merge);
    }

    private void Follow(BasicBlock from, ControlFlowBranch branch, FlowState state, Action<int, FlowState> merge)
    {
        foreach (var f in branch.FinallyRegions) state = RunFinally(f, state);
        if (branch.Destination != null) merge(branch.Destination.Ordinal, state);
    }

    /// <summary>Runs a finally region for one incoming state; its result continues where the branch goes.</summary>
    private FlowState RunFinally(ControlFlowRegion region, FlowState state)
    {
        var local = new Dictionary<int, FlowState>();
        FlowState? outState = null;
        var work = new Queue<int>();
        local[region.FirstBlockOrdinal] = state;
        work.Enqueue(region.FirstBlockOrdinal);
        int budget = (region.LastBlockOrdinal - region.FirstBlockOrdinal + 1) * 40 + 20;
        var done = new HashSet<int>();
        while (work.Count > 0 && budget-- > 0)
        {
            int b = work.Dequeue();
            var block = _cfg.Blocks[b];
            var s = local[b];
            bool report = _report;
            if (report && !done.Add(b)) _report = false;   // record each block once per run
            ProcessBlock(block, s, (dest, ns) =>
            {
                if (dest < region.FirstBlockOrdinal || dest > region.LastBlockOrdinal) return;
                var merged = local.TryGetValue(dest, out var old) ? FlowState.Join(old, ns) : ns;
                if (old != null && old.Equals(merged)) return;
                local[dest] = merged;
                work.Enqueue(dest);
            }, region);
            _report = report;
            if (block.FallThroughSuccessor?.Semantics == ControlFlowBranchSemantics.StructuredExceptionHandling && InnermostFinally(block) == region)
            {
                var end = s;
                foreach (var op in block.Operations) end = Transfer(op, end, true);
                outState = outState == null ? end : FlowState.Join(outState, end);
            }
        }
        return outState ?? state;
    }

    // ---- transfer --------------------------------------------------------------------------

    private FlowState Transfer(IOperation op, FlowState state, bool quiet)
    {
        bool report = _report;
        if (quiet) _report = false;
        try { return Visit(op, state); }
        finally { _report = report; }
    }

    private FlowState Visit(IOperation op, FlowState state)
    {
        switch (op)
        {
            case IFlowAnonymousFunctionOperation:
            case ILocalFunctionOperation:
                return state;
            case IFlowCaptureOperation cap:
                _captures[cap.Id] = cap.Value;
                // `pfns[i] = c ? a : b` captures the element reference before the branch: an lvalue, not a read.
                if (cap.Value is IArrayElementReferenceOperation lvalue && WrittenCaptures.Contains(cap.Id))
                {
                    foreach (var c in lvalue.ChildOperations) state = Visit(c, state);
                    return state;
                }
                return Visit(cap.Value, state);
            case IInvocationOperation inv:
                if (inv.Instance != null) state = Visit(inv.Instance, state);
                foreach (var a in inv.Arguments) state = Visit(a.Value, state);
                return ApplyCall(inv, state);
            case ISimpleAssignmentOperation asg:
                state = Visit(asg.Value, state);
                state = VisitChildrenOfTarget(asg.Target, state);
                return Assign(asg, state);
            case IPropertyReferenceOperation pr:
                if (pr.Instance != null) state = Visit(pr.Instance, state);
                foreach (var a in pr.Arguments) state = Visit(a.Value, state);
                return MemberAccess(pr, pr.Property, state);
            case IFieldReferenceOperation fr:
                if (fr.Instance != null) state = Visit(fr.Instance, state);
                return MemberAccess(fr, fr.Field, state);
            case IArrayElementReferenceOperation ae:
                foreach (var c in ae.ChildOperations) state = Visit(c, state);
                if (!IsWriteTarget(ae) && Unwrap(ae.ArrayReference) is IPropertyReferenceOperation { Property.Name: "HmmPfns" } p
                    && _contracts.Is(p.Property.ContainingType, KnownNames.HmmRange))
                    Consume(state, ae.Syntax.GetLocation());
                return state;
            default:
                foreach (var c in op.ChildOperations) state = Visit(c, state);
                return state;
        }
    }

    private HashSet<CaptureId>? _writtenCaptures;

    /// <summary>Flow captures the graph later assigns through (captured lvalues).</summary>
    private HashSet<CaptureId> WrittenCaptures
    {
        get
        {
            if (_writtenCaptures != null) return _writtenCaptures;
            var set = new HashSet<CaptureId>();
            foreach (var b in _cfg.Blocks)
                foreach (var op in b.Operations)
                    foreach (var d in op.DescendantsAndSelf())
                        if (d is IAssignmentOperation { Target: IFlowCaptureReferenceOperation r }) set.Add(r.Id);
            return _writtenCaptures = set;
        }
    }

    private FlowState VisitChildrenOfTarget(IOperation target, FlowState state)
    {
        switch (target)
        {
            case IPropertyReferenceOperation pr:
                if (pr.Instance != null) state = Visit(pr.Instance, state);
                return MemberAccess(pr, pr.Property, state);
            case IFieldReferenceOperation fr:
                if (fr.Instance != null) state = Visit(fr.Instance, state);
                return MemberAccess(fr, fr.Field, state);
            case IArrayElementReferenceOperation ae:
                foreach (var c in ae.ChildOperations) state = Visit(c, state);
                return state;
            default:
                return state;
        }
    }

    private static bool IsWriteTarget(IOperation op)
    {
        var p = op.Parent;
        while (p is IConversionOperation or IParenthesizedOperation) { op = p; p = p.Parent; }
        return p switch
        {
            IAssignmentOperation a => a.Target == op,
            IIncrementOrDecrementOperation => true,
            IArgumentOperation arg => arg.Parameter?.RefKind is RefKind.Ref or RefKind.Out,
            _ => false,
        };
    }

    private FlowState MemberAccess(IOperation reference, ISymbol member, FlowState state)
    {
        if (_contracts.Is(member.ContainingType, KnownNames.NotifierRange))
        {
            if (member.Name == "Event") return state.WithFlags(state.Flags | FlowFlags.EventChecked);
            if (member.Name != "Owner") return state;
            if (state.Has(FlowFlags.EventChecked)) return state.WithFlags(state.Flags | FlowFlags.OwnerFiltered);
            if ((_facts.Context & CallbackContext.Notifier) != 0) Report(HmmRules.OwnerWithoutEvent, reference.Syntax.GetLocation());
            return state;
        }
        if (_contracts.GuardOf(member) is not { } guard) return state;
        var method = _facts.Method;
        if (method.MethodKind is MethodKind.Constructor or MethodKind.StaticConstructor
            && SymbolEqualityComparer.Default.Equals(method.ContainingType, member.ContainingType)) return state;
        if (ResolvePath(guard, member.ContainingType) is not { } key) return state;
        bool write = IsWriteTarget(reference);
        if (!Holds(state, key, shared: !write) && _report)
            _facts.Needs.Add(new LockNeed(key, !write, reference.Syntax.GetLocation(), (write ? "writing '" : "reading '") + member.Name + "'", NeedKind.GuardedAccess));
        return state;
    }

    private FlowState Assign(ISimpleAssignmentOperation asg, FlowState state)
    {
        // A fresh notifier in the variable: the removed one is gone.
        if (RefKey(asg.Target) is { } tk && state.FindRef(tk) is var ti && ti >= 0 && state.Refs[ti].Kind == RemovedNotifier)
            state = state.WithRefs(state.Refs.RemoveAt(ti));
        if (Unwrap(asg.Target) is not ILocalReferenceOperation lr) return state;
        var local = lr.Local;
        var tries = state.Tries;
        for (int i = tries.Length - 1; i >= 0; i--) if (SymbolEqualityComparer.Default.Equals(tries[i].Local, local)) tries = tries.RemoveAt(i);
        if (Unwrap(asg.Value) is IInvocationOperation inv)
        {
            var c = _contracts.For(inv.TargetMethod);
            bool isTry = c.ReadRetry || (c.RefAcquireKind != null && c.RefAcquireWhen != 0);
            foreach (var e in c.LockEffects) isTry |= e.Kind is LockEffectKind.TryAcquire or LockEffectKind.TryAcquireShared;
            if (isTry) tries = tries.Add(new PendingTry(local, inv));
            if (c.RefAcquireKind != null && c.RefAcquireTarget == "return" && c.RefAcquireWhen == 0)
                state = AddRef(state, RefKey(lr)!, c.RefAcquireKind, inv.Syntax.GetLocation());
        }
        return tries == state.Tries ? state : state.WithTries(tries);
    }

    private FlowState ApplyCall(IInvocationOperation inv, FlowState state)
    {
        var m = inv.TargetMethod;
        // using/foreach lower Dispose to the interface method: the receiver's implementation carries the contract.
        if (m.ContainingType.TypeKind == TypeKind.Interface && Unwrap(inv.Instance)?.Type is { TypeKind: not TypeKind.Interface } rt0
            && rt0.FindImplementationForInterfaceMember(m) is IMethodSymbol impl) m = impl;
        var c = _contracts.For(m);
        var loc = inv.Syntax.GetLocation();
        foreach (var r in c.Requires)
        {
            if (Resolve(_contracts, r.Path, m, inv) is not { } key) continue;
            if (!Holds(state, key, r.Shared) && _report)
                _facts.Needs.Add(new LockNeed(key, r.Shared, loc, "calling '" + m.ContainingType.Name + "." + m.Name + "'", NeedKind.RequiresCall));
        }
        foreach (var x in c.Excludes)
            if (Resolve(_contracts, x, m, inv) is { } key && state.Find(key) != null)
                Report(HmmRules.ExcludedLockHeld, loc, m.ContainingType.Name + "." + m.Name, Display(key));
        bool inSource = m.DeclaringSyntaxReferences.Length > 0 && SymbolEqualityComparer.Default.Equals(m.ContainingAssembly, _contracts.Compilation.Assembly);
        bool blockingBcl = ContractSet.IsBlockingBcl(m);
        if (_report && (inSource || c.HasEffects || blockingBcl || !c.LockEffects.IsEmpty))
            _facts.Calls.Add(new CallSite(m.OriginalDefinition, c, loc, state.Locks, state.Flags, blockingBcl));
        if (c.ConsumesSnapshot) Consume(state, loc);
        if (inv.Instance != null && _contracts.Is(m.ContainingType, KnownNames.IntervalNotifier)) state = NotifierLifetime(inv, m, state, loc);
        if (c.Migrates && _report)
            foreach (var a in inv.Arguments)
                if (RefKey(a.Value) is { } mk && state.FindRef(mk) is var mi && mi >= 0 && state.Refs[mi] is { Kind: "migration", DroppedAt: { } dropped } mr)
                    Report(HmmRules.MigrationLockDropped, dropped, mr.Site.GetLineSpan().StartLinePosition.Line + 1);

        foreach (var e in c.LockEffects)
        {
            if (Resolve(_contracts, e.Target, m, inv) is not { } key) continue;
            switch (e.Kind)
            {
                case LockEffectKind.Acquire: state = Acquire(state, key, false, loc, inv); break;
                case LockEffectKind.AcquireShared: state = Acquire(state, key, true, loc, inv); break;
                case LockEffectKind.Release: state = Release(state, key, loc); break;
            }
        }
        if (c.RefReleaseKind != null && Target(inv, c.RefReleaseTarget!) is { } rt)
        {
            if (RefKey(rt) is { } rk && state.FindRef(rk) is var i && i >= 0) state = state.WithRefs(state.Refs.RemoveAt(i));
            if (_report && Unwrap(rt) is IParameterReferenceOperation pr) _facts.ReleasedParams.Add(pr.Parameter.Name);
            if (_report && RefKey(rt) is { } fk && fk.StartsWith("field:", StringComparison.Ordinal)) _facts.ReleasedFields.Add(fk);
        }
        if (c.RefAcquireKind != null && c.RefAcquireWhen == 0 && c.RefAcquireTarget != "return"
            && Target(inv, c.RefAcquireTarget!) is { } at && RefKey(at) is { } ak)
            state = AddRef(state, ak, c.RefAcquireKind, loc);
        if (inSource && c.RefReleaseKind == null && !state.Refs.IsEmpty)
        {
            // A helper of the same object may release a field-held reference.
            for (int fi = 0; fi < state.Refs.Length; fi++)
            {
                var fr = state.Refs[fi];
                if (fr.Key.StartsWith("field:", StringComparison.Ordinal) && !fr.Escapes.Contains(m.OriginalDefinition, SymbolEqualityComparer.Default))
                    state = state.WithRefs(state.Refs.SetItem(fi, new OwnedRef(fr.Key, fr.Kind, fr.Must, fr.Site, fr.Escapes.Add(m.OriginalDefinition), fr.DroppedAt)));
            }
            foreach (var a in inv.Arguments)
            {
                if (a.Parameter == null || RefKey(a.Value) is not { } k) continue;
                int i = state.FindRef(k);
                if (i < 0) continue;
                var r = state.Refs[i];
                if (!r.Escapes.Contains(m, SymbolEqualityComparer.Default))
                    state = state.WithRefs(state.Refs.SetItem(i, new OwnedRef(r.Key, r.Kind, r.Must, r.Site, r.Escapes.Add(m.OriginalDefinition), r.DroppedAt)));
                if (_report)
                    _facts.ParamPasses.Add(new ParamPass(m.OriginalDefinition, a.Parameter.Name, Unwrap(a.Value) is IParameterReferenceOperation p ? p.Parameter.Name : null));
            }
        }
        if (inSource && _report && c.RefReleaseKind == null)
            foreach (var a in inv.Arguments)
                if (a.Parameter != null && Unwrap(a.Value) is IParameterReferenceOperation fp)
                    _facts.ParamPasses.Add(new ParamPass(m.OriginalDefinition, a.Parameter.Name, fp.Parameter.Name));
        if (c.ReadBegin) state = state.WithValidation(state.Flags & ~(FlowFlags.HasSnapshot | FlowFlags.SnapshotPending | FlowFlags.FaultedSinceBegin), null);
        if (c.Snapshot)
        {
            // HMM-R02/R05: every attempt starts from ReadBegin; retrying with the old sequence livelocks.
            if (state.Has(FlowFlags.FaultedSinceBegin)) Report(HmmRules.FaultWithoutReadBegin, loc);
            state = state.WithValidation(state.Flags | FlowFlags.HasSnapshot | FlowFlags.SnapshotPending | FlowFlags.FaultedSinceBegin, null);
        }
        if (c.SetsSeq) state = state.WithFlags(state.Flags | FlowFlags.SeqSet);
        return state;
    }

    /// <summary>Kind of the pseudo-reference marking a notifier removed on this path (not a leak at exit).</summary>
    private const string RemovedNotifier = "removed-notifier";

    /// <summary>A removed interval notifier is off the tree until inserted again: no sequence use, no second remove.</summary>
    private FlowState NotifierLifetime(IInvocationOperation inv, IMethodSymbol m, FlowState state, Location loc)
    {
        if (RefKey(inv.Instance) is not { } key) return state;
        int i = state.FindRef(key);
        if (m.Name is "Insert" or "InsertLocked")
            return i >= 0 && state.Refs[i].Kind == RemovedNotifier ? state.WithRefs(state.Refs.RemoveAt(i)) : state;
        if (m.Name is not ("ReadBegin" or "ReadRetry" or "CheckRetry" or "SetSeq" or "Remove")) return state;
        if (i >= 0 && state.Refs[i] is { Kind: RemovedNotifier, Must: true } removed)
            Report(HmmRules.NotifierUsedAfterRemove, loc, m.Name, removed.Site.GetLineSpan().StartLinePosition.Line + 1,
                m.Name == "Remove" ? ": removing it twice corrupts the interval tree" : ": its sequence never advances again, so every collision is missed");
        if (m.Name == "Remove" && i < 0) state = AddRef(state, key, RemovedNotifier, loc);
        return state;
    }

    private static IOperation? Target(IInvocationOperation inv, string target)
    {
        if (target == "this") return inv.Instance;
        foreach (var a in inv.Arguments)
            if (a.Parameter?.Name == target) return a.Value is IDeclarationExpressionOperation d ? d.Expression : a.Value;
        return null;
    }

    private FlowState Acquire(FlowState state, string key, bool shared, Location loc, IInvocationOperation inv)
    {
        bool nested = inv.TargetMethod.Parameters.Length > 0;   // Lock(subclass): lockdep's _nested annotation
        if (state.Find(key) is { Must: true } && !nested) Report(HmmRules.LockOrder, loc, Display(key), "it is already held (self-deadlock)");
        if (_report)
        {
            _facts.Acquired.Add(key);
            foreach (var h in state.Locks) if (h.Key != key) _facts.Edges.Add(new LockEdge(h.Key, key, loc));
        }
        bool spin = _contracts.Is(Unwrap(inv.Instance)?.Type, KnownNames.SpinLock);
        var locks = state.Locks;
        for (int i = locks.Length - 1; i >= 0; i--) if (locks[i].Key == key) locks = locks.RemoveAt(i);
        return state.WithLocks(locks.Add(new HeldLock(key, shared, true, loc, false, spin)));
    }

    private FlowState Release(FlowState state, string key, Location loc)
    {
        var locks = state.Locks;
        int idx = -1;
        for (int i = 0; i < locks.Length; i++) if (locks[i].Key == key) idx = i;
        if (idx < 0)
        {
            Report(HmmRules.ReleaseNotHeld, loc, Display(key));
            return state;
        }
        // MIG-R01: one mmap lock hold covers Setup, Pages and Finalize. The drop is remembered on the
        // migration and reported when a later step uses it (a path that just leaks it is HMM1020's).
        if (key == KnownNames.MmapLockClass)
            for (int i = 0; i < state.Refs.Length; i++)
            {
                var r = state.Refs[i];
                if (r.Must && r.Kind == "migration" && r.DroppedAt == null)
                    state = state.WithRefs(state.Refs.SetItem(i, new OwnedRef(r.Key, r.Kind, r.Must, r.Site, r.Escapes, loc)));
            }
        var s = state.WithLocks(locks.RemoveAt(idx));
        if (s.ValidationLock == key && s.Has(FlowFlags.HasSnapshot)) s = s.WithValidation(s.Flags | FlowFlags.SnapshotPending, null);
        return s;
    }

    private static FlowState AddRef(FlowState state, string key, string kind, Location loc)
    {
        int i = state.FindRef(key);
        var refs = i >= 0 ? state.Refs.RemoveAt(i) : state.Refs;
        return state.WithRefs(refs.Add(new OwnedRef(key, kind, true, loc, ImmutableArray<IMethodSymbol>.Empty)));
    }

    private void Consume(FlowState state, Location loc)
    {
        if (state.Has(FlowFlags.SnapshotPending)) Report(HmmRules.SnapshotWithoutRetry, loc);
        else if (!state.Has(FlowFlags.HasSnapshot) && _report) _facts.ConsumesAtEntry ??= loc;
    }

    // ---- branches ----------------------------------------------------------------------------

    private FlowState Refine(FlowState state, IOperation cond, bool outcome)
    {
        cond = Unwrap(cond)!;
        switch (cond)
        {
            case IUnaryOperation { OperatorKind: UnaryOperatorKind.Not } not:
                return Refine(state, not.Operand, !outcome);
            case IPropertyReferenceOperation { Property.Name: "Blockable" } p when _contracts.Is(p.Property.ContainingType, KnownNames.NotifierRange):
                return state.WithFlags(state.Flags | (outcome ? FlowFlags.KnownBlockable : FlowFlags.KnownNonBlockable));
            case IInvocationOperation inv:
                return RefineCall(state, inv, outcome);
            case ILocalReferenceOperation lr:
                return RefineLocal(state, lr.Local, outcome);
            case IBinaryOperation { OperatorKind: BinaryOperatorKind.Equals or BinaryOperatorKind.NotEquals } bin:
            {
                IOperation? other;
                object? c;
                if (bin.RightOperand.ConstantValue.HasValue) { other = bin.LeftOperand; c = bin.RightOperand.ConstantValue.Value; }
                else if (bin.LeftOperand.ConstantValue.HasValue) { other = bin.RightOperand; c = bin.LeftOperand.ConstantValue.Value; }
                else return state;
                bool equal = (bin.OperatorKind == BinaryOperatorKind.Equals) == outcome;
                return RefineCompare(state, other, c, equal);
            }
            case IIsNullOperation isNull:
                return outcome ? DropRef(state, isNull.Operand) : state;
            case IIsPatternOperation { Pattern: IConstantPatternOperation cp } isp when cp.Value.ConstantValue.HasValue:
                return RefineCompare(state, isp.Value, cp.Value.ConstantValue.Value, outcome);
            case IIsPatternOperation { Pattern: INegatedPatternOperation { Pattern: IConstantPatternOperation cp } } isn when cp.Value.ConstantValue.HasValue:
                return RefineCompare(state, isn.Value, cp.Value.ConstantValue.Value, !outcome);
            default:
                return state;
        }
    }

    /// <summary>value == c (equal) or value != c: truthy = "returned true" or "returned Errno.Ok".</summary>
    private FlowState RefineCompare(FlowState state, IOperation value, object? c, bool equal)
    {
        if (c == null) return equal ? DropRef(state, value) : state;   // a null owner holds nothing
        bool? truthy = c switch
        {
            bool b => equal ? b : !b,
            _ when IsZero(c) => equal,
            _ => equal ? false : null,
        };
        if (truthy is not bool t) return DropTry(state, value);
        value = Unwrap(value)!;
        if (value is IInvocationOperation inv) return RefineCall(state, inv, t);
        if (value is ILocalReferenceOperation lr) return RefineLocal(state, lr.Local, t);
        return state;
    }

    private static bool IsZero(object? c) => c switch
    {
        int i => i == 0,
        long l => l == 0,
        uint u => u == 0,
        ulong ul => ul == 0,
        short s => s == 0,
        byte b => b == 0,
        _ => false,
    };

    private FlowState DropRef(FlowState state, IOperation value)
    {
        if (RefKey(value) is not { } k) return state;
        int i = state.FindRef(k);
        return i < 0 ? state : state.WithRefs(state.Refs.RemoveAt(i));
    }

    private FlowState DropTry(FlowState state, IOperation value)
    {
        if (Unwrap(value) is not ILocalReferenceOperation lr) return state;
        var tries = state.Tries;
        for (int i = tries.Length - 1; i >= 0; i--) if (SymbolEqualityComparer.Default.Equals(tries[i].Local, lr.Local)) tries = tries.RemoveAt(i);
        return tries == state.Tries ? state : state.WithTries(tries);
    }

    private FlowState RefineLocal(FlowState state, ILocalSymbol local, bool truthy)
    {
        foreach (var t in state.Tries)
            if (SymbolEqualityComparer.Default.Equals(t.Local, local))
                return RefineCall(state.WithTries(state.Tries.Remove(t)), t.Call, truthy);
        return state;
    }

    private FlowState RefineCall(FlowState state, IInvocationOperation inv, bool truthy)
    {
        var m = inv.TargetMethod;
        var c = _contracts.For(m);
        var loc = inv.Syntax.GetLocation();
        if (truthy)
        {
            foreach (var e in c.LockEffects)
                if (e.Kind is LockEffectKind.TryAcquire or LockEffectKind.TryAcquireShared && Resolve(_contracts, e.Target, m, inv) is { } key)
                    state = Acquire(state, key, e.Kind == LockEffectKind.TryAcquireShared, loc, inv);
            if (c.RefAcquireKind != null && c.RefAcquireWhen != 0 && Target(inv, c.RefAcquireTarget!) is { } t && RefKey(t) is { } rk)
                state = AddRef(state, rk, c.RefAcquireKind, loc);
        }
        else if (c.ReadRetry)
        {
            // No collision: the snapshot is valid for as long as the innermost exclusive lock (U) stays held.
            string? u = null;
            foreach (var h in state.Locks) if (h.Must && !h.Shared) u = h.Key;
            if (u != null) state = state.WithValidation(state.Flags & ~FlowFlags.SnapshotPending, u);
        }
        return state;
    }

    // ---- exits -------------------------------------------------------------------------------

    private void CheckReturn(FlowState state, IOperation value)
    {
        if (!_report || (_facts.Context & CallbackContext.Invalidate) == 0) return;
        // A forwarder (ops class → the driver's method of the same shape): the target is checked itself.
        if (Unwrap(value) is IInvocationOperation fwd && _contracts.For(fwd.TargetMethod).Context != CallbackContext.None) return;
        bool isFalse = value.ConstantValue is { HasValue: true, Value: false };
        if (isFalse && !state.Has(FlowFlags.KnownNonBlockable)) Report(HmmRules.FalseOnBlockable, value.Syntax.GetLocation());
        // Skipping the driver's own migration events is allowed (HMM-R19): such a path filtered on Event and Owner.
        if (!isFalse && (_facts.Context & CallbackContext.HandWrittenInvalidate) != 0 && !state.Has(FlowFlags.SeqSet) && !state.Has(FlowFlags.OwnerFiltered))
            Report(HmmRules.SetSeqMissing, value.Syntax.GetLocation());
    }

    private void CheckExit(FlowState state)
    {
        foreach (var l in state.Locks)
        {
            if (l.FromEntry || DeclaresAcquire(l.Key)) continue;
            Report(HmmRules.LockNotReleased, l.Site, Display(l.Key));
        }
        if (_self.RefAcquireKind != null) return;   // a wrapper that hands its reference to the caller
        foreach (var r in state.Refs)
        {
            if (r.Kind == RemovedNotifier) continue;
            if (r.Escapes.IsEmpty) Report(HmmRules.ForReference(r.Kind), r.Site, r.Kind);
            else _facts.PendingLeaks.Add(r);
        }
    }

    private bool DeclaresAcquire(string key)
    {
        foreach (var e in _self.LockEffects)
            if (e.Kind is LockEffectKind.Acquire or LockEffectKind.AcquireShared && Resolve(_contracts, e.Target, _facts.Method, null) == key) return true;
        return false;
    }

    private void Report(DiagnosticDescriptor rule, Location loc, params object[] args)
    {
        if (!_report || !_reported.Add((rule.Id, loc.SourceSpan.Start))) return;
        _facts.Diagnostics.Add(Diagnostic.Create(rule, loc, args));
    }

    // ---- keys --------------------------------------------------------------------------------

    private static bool Holds(FlowState state, string key, bool shared) =>
        state.Find(key) is { Must: true } h && (shared || !h.Shared);

    private IOperation? Unwrap(IOperation? op)
    {
        for (int guard = 0; op != null && guard < 16; guard++)
        {
            switch (op)
            {
                case IConversionOperation c: op = c.Operand; continue;
                case IParenthesizedOperation p: op = p.Operand; continue;
                case IDeclarationExpressionOperation d: op = d.Expression; continue;
                case IFlowCaptureReferenceOperation r when _captures.TryGetValue(r.Id, out var v): op = v; continue;
            }
            break;
        }
        return op;
    }

    /// <summary>The identity of an owned reference: the local, parameter, field or this it lives in.</summary>
    private string? RefKey(IOperation? op) => Unwrap(op) switch
    {
        ILocalReferenceOperation l => "local:" + l.Local.Name + "@" + (l.Local.Locations.Length > 0 ? l.Local.Locations[0].SourceSpan.Start : 0),
        IParameterReferenceOperation p => "param:" + p.Parameter.Name,
        IInstanceReferenceOperation => "this",
        IFieldReferenceOperation f when f.Instance is null or IInstanceReferenceOperation => "field:" + MemberKey(f.Field),
        IPropertyReferenceOperation pr when pr.Instance is null or IInstanceReferenceOperation => "field:" + MemberKey(pr.Property),
        _ => null,
    };

    public static string MemberKey(ISymbol member) => member.ContainingType.ToDisplayString() + "." + member.Name;

    public static string Display(string key)
    {
        int dot = key.LastIndexOf('.');
        int prev = dot > 0 ? key.LastIndexOf('.', dot - 1) : -1;
        return prev >= 0 ? key.Substring(prev + 1) : key;
    }

    public static ISymbol? FindMember(ITypeSymbol? type, string name)
    {
        for (var t = type; t != null; t = t.BaseType)
            foreach (var m in t.GetMembers(name))
                if (m is IFieldSymbol or IPropertySymbol) return m;
        if (type != null)
            foreach (var i in type.AllInterfaces)
                foreach (var m in i.GetMembers(name))
                    if (m is IPropertySymbol) return m;
        return null;
    }

    private static ITypeSymbol? TypeOf(ISymbol s) => s switch
    {
        IFieldSymbol f => f.Type,
        IPropertySymbol p => p.Type,
        IParameterSymbol p => p.Type,
        _ => null,
    };

    /// <summary>A dotted lock path from a member of <paramref name="type"/> to its lock class.</summary>
    public static string? ResolvePath(string path, ITypeSymbol type)
    {
        ISymbol? member = null;
        ITypeSymbol? t = type;
        foreach (var seg in path.Split('.'))
        {
            if (seg == "this") continue;
            member = FindMember(t, seg);
            if (member == null) return null;
            t = TypeOf(member);
        }
        return member == null ? null : MemberKey(member);
    }

    /// <summary>A contract's lock expression at a call ("this", a parameter, a path) to its lock class.</summary>
    public static string? Resolve(ContractSet contracts, string path, IMethodSymbol method, IInvocationOperation? inv)
    {
        var segs = path.Split('.');
        string first = segs[0];
        IParameterSymbol? param = null;
        foreach (var p in method.Parameters) if (p.Name == first) param = p;
        if (segs.Length == 1 && (first == "this" || param != null))
        {
            if (inv == null) return null;
            var flow = new MethodFlowKeyer();
            return flow.Key(first == "this" ? inv.Instance : Target(inv, first));
        }
        if (param != null) return ResolvePath(path.Substring(first.Length + 1), param.Type);
        return ResolvePath(path, method.ContainingType);
    }

    /// <summary>Lock-class keys for call arguments (captures are not needed there: arguments are plain member reads).</summary>
    private sealed class MethodFlowKeyer
    {
        public string? Key(IOperation? op)
        {
            while (op is IConversionOperation or IParenthesizedOperation)
                op = op is IConversionOperation c ? c.Operand : ((IParenthesizedOperation)op).Operand;
            return op switch
            {
                IFieldReferenceOperation f => MemberKey(f.Field),
                IPropertyReferenceOperation p => MemberKey(p.Property),
                _ => null,
            };
        }
    }
}
