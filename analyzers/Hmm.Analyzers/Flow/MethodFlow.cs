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
internal sealed partial class MethodFlow
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
}
