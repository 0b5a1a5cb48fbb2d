using System.Collections.Immutable;
using Hmm.Analyzers.Rules;
using Microsoft.CodeAnalysis;

namespace Hmm.Analyzers.Flow;

/// <summary>What a method may do, itself or through the callees it reaches in the compilation.</summary>
internal sealed class MethodSummary
{
    public string? BlocksVia;
    public string? DropsMmVia;
    public string? WaitsVia;
    public string? MigratesVia;
    public string? ReadBeginVia;
    public string? FaultsVia;
    public string? ReclaimsVia;
    public string? WaitsWorkVia;
    public HashSet<string> Takes { get; } = new(StringComparer.Ordinal);
}

/// <summary>
/// The whole-program pass at compilation end: method summaries propagated along the call graph
/// to a fixpoint, unmet lock needs handed from private helpers to their callers, the callback
/// rules checked at every call in a callback context, and the lock-order graph searched for cycles.
/// </summary>
internal sealed class ProgramAnalysis
{
    private readonly ContractSet _contracts;
    private readonly Dictionary<IMethodSymbol, MethodFacts> _facts = new(SymbolEqualityComparer.Default);
    private readonly Dictionary<IMethodSymbol, MethodSummary> _summaries = new(SymbolEqualityComparer.Default);
    private readonly Dictionary<IMethodSymbol, List<(MethodFacts Caller, CallSite Site)>> _callers = new(SymbolEqualityComparer.Default);
    private readonly IEnumerable<LockEdge> _declaredEdges;
    private readonly HashSet<(string, int, string?)> _reported = [];
    private Action<Diagnostic> _sink = _ => { };

    public ProgramAnalysis(ContractSet contracts, IEnumerable<MethodFacts> facts, IEnumerable<LockEdge> declaredEdges)
    {
        _contracts = contracts;
        _declaredEdges = declaredEdges;
        // Deterministic order: the bag's order depends on scheduling.
        var ordered = new List<MethodFacts>(facts);
        ordered.Sort((a, b) => string.CompareOrdinal(SymbolNames.Of(a.Method), SymbolNames.Of(b.Method)));
        foreach (var f in ordered) _facts[f.Method.OriginalDefinition] = f;
        foreach (var f in ordered)
            foreach (var s in f.Calls)
            {
                if (!_callers.TryGetValue(s.Callee, out var list)) _callers[s.Callee] = list = [];
                list.Add((f, s));
            }
    }

    public void Run(Action<Diagnostic> sink, CancellationToken cancel)
    {
        _sink = sink;
        Summarize(cancel);
        foreach (var f in _facts.Values)
            foreach (var d in f.Diagnostics) Emit(d);
        ResolveNeeds(cancel);
        ResolveSnapshots();
        ResolvePendingLeaks();
        var invalidateLocks = new Dictionary<string, string>(StringComparer.Ordinal);
        var faultLocks = new Dictionary<string, string>(StringComparer.Ordinal);
        CallbackLocks(invalidateLocks, faultLocks);
        CheckCalls(invalidateLocks, faultLocks, cancel);
        CheckLockOrder(invalidateLocks, cancel);
        CheckBusyRetries();
    }

    /// <summary>HMM1037: an unbounded EBUSY retry loop is fine when a helper it calls backs off (sleeps, yields, ReadBegin).</summary>
    private void CheckBusyRetries()
    {
        foreach (var f in _facts.Values)
            foreach (var loop in f.BusyRetries)
            {
                bool backsOff = false;
                foreach (var callee in loop.SourceCallees)
                    if (BacksOff(callee, 0)) { backsOff = true; break; }
                if (!backsOff) Emit(Diagnostic.Create(HmmRules.UnboundedBusyRetry, loop.Call, loop.Callee));
            }
    }

    private bool BacksOff(IMethodSymbol m, int depth)
    {
        if (SummaryOf(m)?.ReadBeginVia != null) return true;
        if (depth > 8 || !_facts.TryGetValue(m, out var f)) return false;
        if (f.BacksOff) return true;
        foreach (var s in f.Calls)
            if (BacksOff(s.Callee, depth + 1)) return true;
        return false;
    }

    private MethodSummary? SummaryOf(IMethodSymbol m) => _summaries.TryGetValue(m, out var s) ? s : null;

    private void Summarize(CancellationToken cancel)
    {
        foreach (var f in _facts.Values)
        {
            var s = new MethodSummary();
            s.Takes.UnionWith(f.Acquired);
            _summaries[f.Method.OriginalDefinition] = s;
        }
        bool changed = true;
        for (int round = 0; changed && round < 64; round++)
        {
            cancel.ThrowIfCancellationRequested();
            changed = false;
            foreach (var f in _facts.Values)
            {
                var s = _summaries[f.Method.OriginalDefinition];
                foreach (var site in f.Calls)
                {
                    var c = site.Contract;
                    var cs = SummaryOf(site.Callee);
                    string name = Name(site.Callee);
                    // A blocking call behind a Blockable check does not make the method blocking for non-blockable callers.
                    if (s.BlocksVia == null && !site.Flags.HasFlag(FlowFlags.KnownBlockable)
                        && (c.MayBlock || site.BlockingBcl || cs?.BlocksVia != null)) { s.BlocksVia = Via(name, cs?.BlocksVia, c.MayBlock || site.BlockingBcl); changed = true; }
                    if (s.DropsMmVia == null && (c.MayDropMm || cs?.DropsMmVia != null)) { s.DropsMmVia = Via(name, cs?.DropsMmVia, c.MayDropMm); changed = true; }
                    if (s.WaitsVia == null && (c.WaitsForCallbacks || cs?.WaitsVia != null)) { s.WaitsVia = Via(name, cs?.WaitsVia, c.WaitsForCallbacks); changed = true; }
                    if (s.MigratesVia == null && (c.Migrates || cs?.MigratesVia != null)) { s.MigratesVia = Via(name, cs?.MigratesVia, c.Migrates); changed = true; }
                    if (s.ReadBeginVia == null && (c.ReadBegin || cs?.ReadBeginVia != null)) { s.ReadBeginVia = Via(name, cs?.ReadBeginVia, c.ReadBegin); changed = true; }
                    if (s.FaultsVia == null && (c.SnapshotFaults || cs?.FaultsVia != null)) { s.FaultsVia = Via(name, cs?.FaultsVia, c.SnapshotFaults); changed = true; }
                    if (s.ReclaimsVia == null && (c.MayReclaim || cs?.ReclaimsVia != null)) { s.ReclaimsVia = Via(name, cs?.ReclaimsVia, c.MayReclaim); changed = true; }
                    if (s.WaitsWorkVia == null && (c.WaitsForWork || cs?.WaitsWorkVia != null)) { s.WaitsWorkVia = Via(name, cs?.WaitsWorkVia, c.WaitsForWork); changed = true; }
                    if (cs != null)
                        foreach (var k in cs.Takes)
                            if (s.Takes.Add(k)) changed = true;
                }
            }
        }
    }

    private static string Via(string name, string? inner, bool direct) => direct || inner == null ? name : name + " → " + inner;

    // Asked for every call site on every round of the fixpoint: built once per callee.
    private string Name(IMethodSymbol m)
    {
        if (!_names.TryGetValue(m, out var n)) _names[m] = n = m.ContainingType.Name + "." + m.Name;
        return n;
    }

    private readonly Dictionary<IMethodSymbol, string> _names = new(SymbolEqualityComparer.Default);

    private void ResolveNeeds(CancellationToken cancel)
    {
        var work = new Queue<(MethodFacts, LockNeed)>();
        var seen = new HashSet<(IMethodSymbol, string, int)>();
        foreach (var f in _facts.Values) foreach (var n in f.Needs) work.Enqueue((f, n));
        while (work.Count > 0)
        {
            cancel.ThrowIfCancellationRequested();
            var (f, n) = work.Dequeue();
            if (f.Deferrable && _callers.TryGetValue(f.Method.OriginalDefinition, out var callers))
            {
                foreach (var (caller, site) in callers)
                {
                    if (site.Holds(n.Key, n.Shared)) continue;
                    var deferred = new LockNeed(n.Key, n.Shared, site.Location, "calling '" + Name(f.Method) + "' (" + n.What + ")", n.Kind);
                    if (seen.Add((caller.Method, n.Key, site.Location.SourceSpan.Start))) work.Enqueue((caller, deferred));
                }
                continue;
            }
            string mode = n.Shared ? "" : " exclusively";
            if (n.Kind == NeedKind.GuardedAccess) Emit(Diagnostic.Create(HmmRules.GuardedAccess, n.Site, Cap(n.What), MethodFlow.Display(n.Key), mode));
            else if (n.Key == KnownNames.MmapLockClass) Emit(Diagnostic.Create(HmmRules.MmapLockRequired, n.Site, Cap(n.What), "", n.Shared ? " (read)" : " (write)"));
            else Emit(Diagnostic.Create(HmmRules.RequiresNotHeld, n.Site, Cap(n.What), MethodFlow.Display(n.Key), mode));
        }
    }

    private static string Cap(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s.Substring(1);

    /// <summary>A helper that consumes a snapshot it did not take: its callers must call it with a validated one.</summary>
    private void ResolveSnapshots()
    {
        var work = new Queue<MethodFacts>();
        var seen = new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default);
        foreach (var f in _facts.Values) if (f.ConsumesAtEntry != null) { work.Enqueue(f); seen.Add(f.Method); }
        while (work.Count > 0)
        {
            var f = work.Dequeue();
            if (!_callers.TryGetValue(f.Method.OriginalDefinition, out var callers)) continue;
            foreach (var (caller, site) in callers)
            {
                if (site.Flags.HasFlag(FlowFlags.SnapshotPending)) Emit(Diagnostic.Create(HmmRules.SnapshotWithoutRetry, site.Location));
                else if (!site.Flags.HasFlag(FlowFlags.HasSnapshot) && seen.Add(caller.Method)) work.Enqueue(caller);
            }
        }
    }

    private void ResolvePendingLeaks()
    {
        foreach (var f in _facts.Values)
            foreach (var r in f.PendingLeaks)
            {
                bool released = false;
                foreach (var p in f.ParamPasses)
                    if (r.Escapes.Contains(p.Callee, SymbolEqualityComparer.Default) && ReleasesParam(p.Callee, p.CalleeParam, 0)) released = true;
                foreach (var e in r.Escapes)
                    if (ReleasesField(e, r.Key, 0)) released = true;
                if (!released) Emit(Diagnostic.Create(HmmRules.ForReference(r.Kind), r.Site, r.Kind));
            }
    }

    private bool ReleasesField(IMethodSymbol m, string key, int depth)
    {
        if (depth > 8 || !_facts.TryGetValue(m, out var f)) return false;
        if (f.ReleasedFields.Contains(key)) return true;
        foreach (var s in f.Calls)
            if (ReleasesField(s.Callee, key, depth + 1)) return true;
        return false;
    }

    private bool ReleasesParam(IMethodSymbol m, string param, int depth)
    {
        if (depth > 8 || !_facts.TryGetValue(m, out var f)) return false;
        if (f.ReleasedParams.Contains(param)) return true;
        foreach (var p in f.ParamPasses)
            if (p.CallerParam == param && ReleasesParam(p.Callee, p.CalleeParam, depth + 1)) return true;
        return false;
    }

    /// <summary>Locks the invalidate callbacks take (U included), and those hmm_range_fault may need through migrate_to_ram.</summary>
    private void CallbackLocks(Dictionary<string, string> invalidate, Dictionary<string, string> fault)
    {
        foreach (var f in _facts.Values)
        {
            if (MethodFlow.UpdateLockOf(_contracts, f.Method.ContainingType) is { } u) invalidate[u] = "the generated invalidate callback";
            var s = _summaries[f.Method.OriginalDefinition];
            if ((f.Context & CallbackContext.Invalidate) != 0)
                foreach (var k in s.Takes) invalidate[k] = "the invalidate callback '" + Name(f.Method) + "'";
            // A whole-mm invalidate_range_start/_end (MmuNotifierOps) runs inside the same invalidation
            // window: a reader holding a lock it takes waits for an invalidation that waits for the reader.
            // Its release / free_notifier callbacks carry no range and do not count.
            else if ((f.Context & CallbackContext.NonBlockableRange) != 0)
                foreach (var k in s.Takes)
                    if (!invalidate.ContainsKey(k)) invalidate[k] = "the whole-mm invalidate callback '" + Name(f.Method) + "'";
        }
        foreach (var kv in invalidate) fault[kv.Key] = kv.Value;
        foreach (var f in _facts.Values)
            if ((f.Context & CallbackContext.MigrateToRam) != 0)
                foreach (var k in _summaries[f.Method.OriginalDefinition].Takes)
                    if (!fault.ContainsKey(k)) fault[k] = "the driver's own migrate_to_ram '" + Name(f.Method) + "'";
    }

    private void CheckCalls(Dictionary<string, string> invalidateLocks, Dictionary<string, string> faultLocks, CancellationToken cancel)
    {
        foreach (var f in _facts.Values)
        {
            cancel.ThrowIfCancellationRequested();
            foreach (var site in f.Calls)
            {
                var c = site.Contract;
                var cs = SummaryOf(site.Callee);
                string name = Name(site.Callee);
                string? blocks = c.MayBlock || site.BlockingBcl ? name : cs?.BlocksVia is { } b ? name + " → " + b : null;
                string? drops = c.MayDropMm ? name : cs?.DropsMmVia is { } d ? name + " → " + d : null;
                string? waits = c.WaitsForCallbacks ? name : cs?.WaitsVia is { } w ? name + " → " + w : null;
                string? migrates = c.Migrates ? name : cs?.MigratesVia is { } mg ? name + " → " + mg : null;
                string? readBegin = c.ReadBegin ? name : cs?.ReadBeginVia is { } rb ? name + " → " + rb : null;
                string? faults = c.SnapshotFaults ? name : cs?.FaultsVia is { } fl ? name + " → " + fl : null;
                string? reclaims = c.MayReclaim ? name : cs?.ReclaimsVia is { } rc ? name + " → " + rc : null;
                string? waitsWork = c.WaitsForWork ? name : cs?.WaitsWorkVia is { } ww ? name + " → " + ww : null;

                if (blocks != null)
                {
                    if ((f.Context & (CallbackContext.Invalidate | CallbackContext.NonBlockableRange)) != 0 && !site.Flags.HasFlag(FlowFlags.KnownBlockable))
                        Emit(Diagnostic.Create(HmmRules.BlockingInNonBlockable, site.Location, name, Chain(blocks, name)));
                    if ((f.Context & CallbackContext.Atomic) != 0)
                        Emit(Diagnostic.Create(HmmRules.SleepInAtomic, site.Location, name, Chain(blocks, name), "page_free"));
                    foreach (var h in site.Held)
                        if (h.Spin && h.Must) { Emit(Diagnostic.Create(HmmRules.SleepInAtomic, site.Location, name, Chain(blocks, name), "holding spinlock '" + MethodFlow.Display(h.Key) + "'")); break; }
                }
                if (waits != null)
                {
                    if ((f.Context & CallbackContext.Notifier) != 0) Emit(Diagnostic.Create(HmmRules.NotifierRemovalInCallback, site.Location, name, Chain(waits, name) + " from inside a notifier callback"));
                    else if (HeldOf(site, invalidateLocks) is { } u) Emit(Diagnostic.Create(HmmRules.NotifierRemovalInCallback, site.Location, name, Chain(waits, name) + " while holding '" + MethodFlow.Display(u) + "', which " + invalidateLocks[u] + " takes"));
                }
                if (drops != null)
                {
                    if ((f.Context & (CallbackContext.Notifier | CallbackContext.Atomic)) != 0) Emit(Diagnostic.Create(HmmRules.MmDropInCallback, site.Location, name, Chain(drops, name) + " inside a callback"));
                    else if (HeldOf(site, invalidateLocks) is { } u) Emit(Diagnostic.Create(HmmRules.MmDropInCallback, site.Location, name, Chain(drops, name) + " while holding '" + MethodFlow.Display(u) + "', which " + invalidateLocks[u] + " takes"));
                }
                // HMM-R09: reclaim unmaps pages and so raises invalidations that wait for U.
                if (reclaims != null)
                {
                    if ((f.Context & CallbackContext.Notifier) != 0) Emit(Diagnostic.Create(HmmRules.ReclaimUnderUpdateLock, site.Location, name, Chain(reclaims, name) + " inside a notifier callback"));
                    else if (HeldOf(site, invalidateLocks) is { } u) Emit(Diagnostic.Create(HmmRules.ReclaimUnderUpdateLock, site.Location, name, Chain(reclaims, name) + " while holding '" + MethodFlow.Display(u) + "', which " + invalidateLocks[u] + " takes"));
                }
                // A callback waiting for work: the work may drop the last mm reference (exit teardown runs the
                // release callbacks and waits for this one) or take U, which this callback or the lock holder has.
                if (waitsWork != null)
                {
                    if ((f.Context & CallbackContext.Notifier) != 0) Emit(Diagnostic.Create(HmmRules.CallbackWaitsForWork, site.Location, name, Chain(waitsWork, name), "inside a notifier callback"));
                    else if (HeldOf(site, invalidateLocks) is { } u) Emit(Diagnostic.Create(HmmRules.CallbackWaitsForWork, site.Location, name, Chain(waitsWork, name), "while holding '" + MethodFlow.Display(u) + "', which " + invalidateLocks[u] + " takes"));
                }
                if (migrates != null && (f.Context & CallbackContext.Notifier) != 0)
                    Emit(Diagnostic.Create(HmmRules.MigrationInCallback, site.Location, name, Chain(migrates, name)));
                if (readBegin != null && HeldOf(site, invalidateLocks) is { } ru)
                    Emit(Diagnostic.Create(HmmRules.FaultUnderCallbackLock, site.Location, readBegin, MethodFlow.Display(ru), invalidateLocks[ru]));
                else if (faults != null && HeldOf(site, faultLocks) is { } fu)
                    Emit(Diagnostic.Create(HmmRules.FaultUnderCallbackLock, site.Location, faults, MethodFlow.Display(fu), faultLocks[fu]));
            }
        }
    }

    private static string Chain(string chain, string name) => chain == name ? "" : " (via " + chain + ")";

    private static string? HeldOf(CallSite site, Dictionary<string, string> locks)
    {
        foreach (var h in site.Held) if (locks.ContainsKey(h.Key)) return h.Key;
        return null;
    }

    private void CheckLockOrder(Dictionary<string, string> invalidateLocks, CancellationToken cancel)
    {
        var edges = new List<LockEdge>();
        var declared = new HashSet<LockEdge>(_declaredEdges);
        foreach (var f in _facts.Values)
        {
            edges.AddRange(f.Edges);
            foreach (var site in f.Calls)
                if (SummaryOf(site.Callee) is { } cs)
                    foreach (var k in cs.Takes)
                        foreach (var h in site.Held)
                            if (h.Key != k) edges.Add(new LockEdge(h.Key, k, site.Location));
                            // A callee (at any depth) taking a lock the caller holds exclusively: the body's own
                            // re-acquire is reported by the flow pass; through helpers only here (an [OnMigrated]
                            // or [Requires(U)] method calling a helper that locks U). A callee declaring [Excludes]
                            // is checked at the call by HMM1003 already; one declaring [Acquires]-style effects had
                            // them applied at the call by the flow pass (which honours nested subclasses).
                            else if (h.Must && !h.Shared && site.Contract.Excludes.IsEmpty && site.Contract.LockEffects.IsEmpty)
                                Emit(Diagnostic.Create(HmmRules.LockOrder, site.Location, MethodFlow.Display(k), "it is already held and '" + Name(site.Callee) + "' takes it (self-deadlock)"));
        }
        edges.AddRange(_declaredEdges);
        foreach (var u in invalidateLocks.Keys)
            if (u != KnownNames.MmapLockClass) edges.Add(new LockEdge(KnownNames.MmapLockClass, u, null));
        var graph = new Dictionary<string, List<LockEdge>>(StringComparer.Ordinal);
        foreach (var e in edges)
        {
            if (!graph.TryGetValue(e.From, out var list)) graph[e.From] = list = [];
            list.Add(e);
        }
        var observed = edges.FindAll(e => e.Site != null && e.Site.IsInSource && !declared.Contains(e));
        observed.Sort((a, b) =>
        {
            int c = string.CompareOrdinal(a.Site!.SourceTree?.FilePath, b.Site!.SourceTree?.FilePath);
            return c != 0 ? c : a.Site.SourceSpan.Start.CompareTo(b.Site.SourceSpan.Start);
        });
        var cycles = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in observed)
        {
            cancel.ThrowIfCancellationRequested();
            var path = PathBetween(graph, e.To, e.From);
            if (path == null) continue;
            var nodes = new List<string> { e.From, e.To };
            foreach (var p in path) nodes.Add(p.To);
            nodes.Sort(StringComparer.Ordinal);
            if (!cycles.Add(string.Join("|", nodes.Distinct()))) continue;
            var other = path.Find(p => p.Site != null);
            string where = other?.Site is { } os && os.IsInSource
                ? "'" + MethodFlow.Display(e.From) + "' is held, but '" + MethodFlow.Display(e.To) + "' is taken before '" + MethodFlow.Display(other.To) + "' at line " + (os.GetLineSpan().StartLinePosition.Line + 1)
                : "'" + MethodFlow.Display(e.From) + "' is held, against the kernel order mmap lock → update lock U → callback locks";
            var extra = other?.Site is { } xs && xs.IsInSource ? new[] { xs } : [];
            Emit(Diagnostic.Create(HmmRules.LockOrder, e.Site, extra, MethodFlow.Display(e.To), where));
        }
    }

    private static List<LockEdge>? PathBetween(Dictionary<string, List<LockEdge>> graph, string from, string to)
    {
        var prev = new Dictionary<string, LockEdge>(StringComparer.Ordinal);
        var queue = new Queue<string>();
        queue.Enqueue(from);
        var seen = new HashSet<string>(StringComparer.Ordinal) { from };
        while (queue.Count > 0)
        {
            var n = queue.Dequeue();
            if (n == to)
            {
                var path = new List<LockEdge>();
                for (var k = to; k != from; k = prev[k].From) path.Add(prev[k]);
                path.Reverse();
                return path;
            }
            if (!graph.TryGetValue(n, out var outs)) continue;
            foreach (var e in outs)
                if (seen.Add(e.To)) { prev[e.To] = e; queue.Enqueue(e.To); }
        }
        return null;
    }

    private void Emit(Diagnostic d)
    {
        if (!_reported.Add((d.Id, d.Location.SourceSpan.Start, d.Location.SourceTree?.FilePath))) return;
        _sink(d);
    }
}
