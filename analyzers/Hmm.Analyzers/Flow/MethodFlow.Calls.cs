using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

using Hmm.Analyzers.Rules;

namespace Hmm.Analyzers.Flow;

// MethodFlow, the effect of a call: contracts at the call site, lock acquire/release, owned references, the notifier lifetime.
internal sealed partial class MethodFlow
{
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
        bool inSource = SymbolNames.HasSource(m) && SymbolEqualityComparer.Default.Equals(m.ContainingAssembly, _contracts.Compilation.Assembly);
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

}
