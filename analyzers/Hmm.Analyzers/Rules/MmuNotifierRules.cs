using System.Collections.Concurrent;
using Hmm.Analyzers.Flow;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace Hmm.Analyzers.Rules;

/// <summary>
/// The whole-mm mmu_notifier rules (HMM1050–HMM1059), all read from contracts: a reference from
/// <c>MmuNotifier.Get</c> ([AcquiresReference("mmu-notifier")]) leaked on some path (HMM1050,
/// decided by the flow engine like the other reference kinds); a notifier used or put again after
/// its last put (HMM1051, <see cref="MmuNotifierUseAfterPut"/>); a type taking such references
/// whose unload path never drains the deferred frees ([DrainsDeferredFrees], HMM1052); per-object
/// cleanup placed in the release callback of get/put ops, which the put path never runs
/// (HMM1053). A put inside release is allowed (the kernel documents it) and never reported.
/// </summary>
internal static class MmuNotifierRules
{
    public const string Kind = "mmu-notifier";
    public const string NotifierLifetime = "Hmm.Dsl.NotifierLifetimeAttribute";
    public const string DrainsDeferredFrees = "Hmm.Dsl.DrainsDeferredFreesAttribute";
    public const string ModuleExit = "Hmm.Dsl.ModuleExitAttribute";

    /// <summary>The notifier type: only bodies handing one to a source helper are kept for HMM1051's helper summaries.</summary>
    public const string MmuNotifier = "Hmm.Runtime.Notifiers.MmuNotifier";

    /// <summary>The runtime types these rules read, for the test that checks them against the runtime.</summary>
    public static readonly string[] AllRuntimeTypes = [NotifierLifetime, DrainsDeferredFrees, ModuleExit, MmuNotifier];

    private static DiagnosticDescriptor Rule(string id, string title, string message, string description, bool end) =>
        new(id, title, message, HmmRules.NotifierCategory, DiagnosticSeverity.Warning, isEnabledByDefault: true, description,
            helpLinkUri: "docs/diagnostics/" + id + ".md",
            customTags: end ? [WellKnownDiagnosticTags.CompilationEnd] : []);

    public static readonly DiagnosticDescriptor ReferenceLeaked = Rule("HMM1050", "mmu_notifier reference not put on some path",
        "The '{0}' reference taken here is not put on some path: the notifier stays registered and is never freed",
        "Every successful MmuNotifier.Get (mmu_notifier_get) takes a user reference that needs exactly one Put (mmu_notifier_put) on every path, error paths included; a leaked reference keeps the notifier on the mm's list, calling into the driver until the mm exits, and its free_notifier never runs.",
        end: true);

    public static readonly DiagnosticDescriptor UsedAfterPut = Rule("HMM1051", "mmu_notifier used after its last put",
        "'{0}' {1} after the put at line {2}: once the last reference is put the notifier is off the list and freed after a grace period",
        "After mmu_notifier_put drops what may be the last reference, free_notifier runs once an SRCU grace period ends: touching the notifier afterwards is a use after free, and putting it again is a put without a get (the users count underflows). Take the reference again with Get first, or put last.",
        end: true);

    public static readonly DiagnosticDescriptor NoSynchronizeOnUnload = Rule("HMM1052", "mmu_notifier frees not drained on the unload path",
        "'{0}' takes mmu_notifier references (here) but {1}: a free queued by the last put can run after the module is gone",
        "mmu_notifier_put frees through call_srcu: free_notifier (driver code) runs later. A module that uses mmu_notifier_get must call mmu_notifier_synchronize (MmuNotifier.Synchronize) on its exit path — its Dispose or [ModuleExit] method — or that callback runs into unloaded code (NTF-R02).",
        end: true);

    public static readonly DiagnosticDescriptor CleanupInRelease = Rule("HMM1053", "Per-notifier cleanup in release instead of free_notifier",
        "'{0}' cleans up in release ({1}), but release runs only if the mm exits while the notifier is registered: a notifier put first never gets it — do it in FreeNotifier",
        "With mmu_notifier_get/put the release callback runs only when the mm is torn down before the last put; a notifier whose last put comes first is freed without release. Cleanup every notifier needs (dropping references, disposing per-mm driver state) belongs in free_notifier, which runs exactly once after the last put; release should only stop the device using the mm. A put inside release is fine.",
        end: true);

    public static readonly DiagnosticDescriptor[] All = [ReferenceLeaked, UsedAfterPut, NoSynchronizeOnUnload, CleanupInRelease];

    /// <summary>A call a source method makes: to whom, from which type, and where.</summary>
    private sealed class CallSite(IMethodSymbol caller, IMethodSymbol callee, Location location)
    {
        public IMethodSymbol Caller { get; } = caller;
        public IMethodSymbol Callee { get; } = callee;
        public Location Location { get; } = location;
    }

    public static void Register(Compilation compilation, OperationDispatch operations)
    {
        if (RuntimeTypes.Of(compilation).Get(DrainsDeferredFrees) is not { } drainsAttr
            || RuntimeTypes.Of(compilation).Get(NotifierLifetime) is not { } lifetimeAttr
            || RuntimeTypes.Of(compilation).Get(KnownNames.AcquiresReference) is not { } acquiresAttr
            || RuntimeTypes.Of(compilation).Get(KnownNames.ReleasesReference) is not { } releasesAttr) return;
        var moduleExitAttr = RuntimeTypes.Of(compilation).Get(ModuleExit);
        var calls = new ConcurrentBag<CallSite>();
        var notifierType = RuntimeTypes.Of(compilation).Get(MmuNotifier);
        var useAfterPut = new MmuNotifierUseAfterPut(releasesAttr, notifierType);
        var dsl = drainsAttr.ContainingNamespace;
        operations.OnBlock(b =>
        {
            if (b.OwningSymbol is not IMethodSymbol method) return;
            foreach (var block in b.OperationBlocks)
            {
                // One walk: the calls the rules follow, and whether the body may put a notifier.
                bool mayPut = false;
                foreach (var op in block.Descendants())
                {
                    if (op is not IInvocationOperation inv) continue;
                    var target = inv.TargetMethod;
                    bool inSource = !target.DeclaringSyntaxReferences.IsEmpty;
                    if (inSource || IsDispose(target) || HasDslAttribute(target, dsl))
                        calls.Add(new CallSite(method, target.OriginalDefinition, inv.Syntax.GetLocation()));
                    if (!mayPut && (useAfterPut.IsNotifierPut(target) || (inSource && PassesNotifier(inv, notifierType)))) mayPut = true;
                }
                if (mayPut && block is IMethodBodyOperation or IBlockOperation or IConstructorBodyOperation)
                    useAfterPut.Collect(method, b.GetControlFlowGraph(block));
            }
        });
        operations.OnCompilationEnd(end =>
        {
            var graph = CallGraph.Build(calls);
            useAfterPut.Report(end.ReportDiagnostic, end.CancellationToken);
            CheckUnloadPaths(end, graph, acquiresAttr, drainsAttr, moduleExitAttr);
            CheckReleaseCleanup(end, graph, lifetimeAttr, releasesAttr);
        });
    }

    private static bool PassesNotifier(IInvocationOperation inv, INamedTypeSymbol? notifierType)
    {
        if (notifierType == null) return false;
        foreach (var a in inv.Arguments)
            for (var t = a.Parameter?.Type as INamedTypeSymbol; t != null; t = t.BaseType)
                if (SymbolEqualityComparer.Default.Equals(t, notifierType)) return true;
        return false;
    }

    /// <summary>Whether <paramref name="m"/> carries a contract attribute of the Hmm.Dsl namespace.</summary>
    private static bool HasDslAttribute(IMethodSymbol m, INamespaceSymbol dsl)
    {
        foreach (var a in m.GetAttributes())
            if (SymbolEqualityComparer.Default.Equals(a.AttributeClass?.ContainingNamespace, dsl)) return true;
        return false;
    }

    /// <summary>Calls per source method, in the order seen.</summary>
    private sealed class CallGraph
    {
        public readonly Dictionary<IMethodSymbol, List<CallSite>> Out = new(SymbolEqualityComparer.Default);

        public static CallGraph Build(IEnumerable<CallSite> calls)
        {
            var g = new CallGraph();
            var all = new List<CallSite>(calls);
            all.Sort((a, b) =>
            {
                int c = string.CompareOrdinal(a.Location.SourceTree?.FilePath, b.Location.SourceTree?.FilePath);
                return c != 0 ? c : a.Location.SourceSpan.Start.CompareTo(b.Location.SourceSpan.Start);
            });
            foreach (var c in all)
            {
                var key = (IMethodSymbol)c.Caller.OriginalDefinition;
                if (!g.Out.TryGetValue(key, out var list)) g.Out[key] = list = new List<CallSite>();
                list.Add(c);
            }
            return g;
        }

        /// <summary>The first call at most <paramref name="depth"/> source calls below <paramref name="method"/> satisfying <paramref name="match"/>.</summary>
        public CallSite? Find(IMethodSymbol method, int depth, Func<IMethodSymbol, bool> match)
        {
            var seen = new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default);
            return Find(method, depth, match, seen);
        }

        private CallSite? Find(IMethodSymbol method, int depth, Func<IMethodSymbol, bool> match, HashSet<IMethodSymbol> seen)
        {
            if (!seen.Add(method) || !Out.TryGetValue(method, out var list)) return null;
            foreach (var c in list)
                if (match(c.Callee)) return c;
            if (depth == 0) return null;
            foreach (var c in list)
                if (Find(c.Callee, depth - 1, match, seen) is { } hit) return hit;
            return null;
        }
    }

    private static bool Has(ISymbol symbol, INamedTypeSymbol attr, out AttributeData? data)
    {
        foreach (var a in symbol.GetAttributes())
            if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, attr)) { data = a; return true; }
        data = null;
        return false;
    }

    private static string? FirstString(AttributeData? a) => a is { ConstructorArguments.Length: > 0 } ? a.ConstructorArguments[0].Value as string : null;

    // ---- HMM1052 ---------------------------------------------------------------------------------

    /// <summary>
    /// For every source type whose own methods (or helpers two calls below them) acquire a reference
    /// of a kind some [DrainsDeferredFrees] method drains: one of its Dispose / [ModuleExit]
    /// methods must reach such a drain within two helper calls.
    /// </summary>
    private static void CheckUnloadPaths(CompilationAnalysisContext end, CallGraph graph, INamedTypeSymbol acquiresAttr, INamedTypeSymbol drainsAttr, INamedTypeSymbol? moduleExitAttr)
    {
        // A reference kind needs draining when the acquiring type declares a [DrainsDeferredFrees] of that kind.
        var drainable = new Dictionary<INamedTypeSymbol, HashSet<string>>(SymbolEqualityComparer.Default);
        bool Acquires(IMethodSymbol m)
        {
            if (!m.DeclaringSyntaxReferences.IsEmpty || m.ContainingType is not { } t || !Has(m, acquiresAttr, out var a) || FirstString(a) is not { } k) return false;
            if (!drainable.TryGetValue(t, out var kinds))
            {
                drainable[t] = kinds = new HashSet<string>(StringComparer.Ordinal);
                foreach (var member in t.GetMembers())
                    if (member is IMethodSymbol dm && Has(dm, drainsAttr, out var d) && FirstString(d) is { } dk) kinds.Add(dk);
            }
            return kinds.Contains(k);
        }
        bool Drains(IMethodSymbol m) => Has(m, drainsAttr, out _);

        var byType = new Dictionary<INamedTypeSymbol, CallSite>(SymbolEqualityComparer.Default);
        foreach (var caller in graph.Out.Keys)
        {
            if (caller.ContainingType is not { } type || byType.ContainsKey(type)) continue;
            if (graph.Find(caller, 2, Acquires) is { } site) byType[type] = new CallSite(caller, site.Callee, FirstSiteIn(graph, caller, site));
        }
        foreach (var pair in byType)
        {
            var type = pair.Key;
            var exits = new List<IMethodSymbol>();
            foreach (var member in type.GetMembers())
                if (member is IMethodSymbol m && (IsDispose(m) || (moduleExitAttr != null && Has(m, moduleExitAttr, out _)))) exits.Add(m);
            bool ok = false;
            foreach (var exit in exits)
                if (graph.Find(exit, 2, Drains) != null) { ok = true; break; }
            if (ok) continue;
            string why = exits.Count == 0
                ? "it has no Dispose or [ModuleExit] method calling MmuNotifier.Synchronize"
                : $"its unload path '{exits[0].Name}' never calls MmuNotifier.Synchronize";
            end.ReportDiagnostic(Diagnostic.Create(NoSynchronizeOnUnload, pair.Value.Location, type.Name, why));
        }
    }

    /// <summary>The call in <paramref name="caller"/>'s own body that leads to <paramref name="site"/> (the site itself when direct).</summary>
    private static Location FirstSiteIn(CallGraph graph, IMethodSymbol caller, CallSite site)
    {
        if (SymbolEqualityComparer.Default.Equals(site.Caller.OriginalDefinition, caller)) return site.Location;
        foreach (var c in graph.Out[caller])
            if (graph.Find(c.Callee, 1, m => SymbolEqualityComparer.Default.Equals(m, site.Callee)) != null || SymbolEqualityComparer.Default.Equals(c.Callee, site.Caller.OriginalDefinition))
                return c.Location;
        return site.Location;
    }

    private static bool IsDispose(IMethodSymbol m) => m.Name is "Dispose" or "DisposeAsync" && m.Parameters.Length == 0;

    // ---- HMM1053 ---------------------------------------------------------------------------------

    /// <summary>
    /// For every source override of a [NotifierLifetime(Release)] callback in a type that also
    /// overrides the Alloc one (ops used with get/put): cleanup reached from it — a Dispose, or a
    /// [ReleasesReference] call of another kind than the notifier's own put — that the type's Free
    /// override does not also reach.
    /// </summary>
    private static void CheckReleaseCleanup(CompilationAnalysisContext end, CallGraph graph, INamedTypeSymbol lifetimeAttr, INamedTypeSymbol releasesAttr)
    {
        foreach (var caller in graph.Out.Keys)
        {
            if (RoleOf(caller, lifetimeAttr) != 0 || caller.ContainingType is not { } type) continue;   // 0 = Release
            IMethodSymbol? alloc = null, free = null;
            foreach (var member in type.GetMembers())
                if (member is IMethodSymbol m && m.IsOverride)
                    switch (RoleOf(m, lifetimeAttr))
                    {
                        case 1: alloc = m; break;
                        case 2: free = m; break;
                    }
            if (alloc == null) continue;
            bool Cleanup(IMethodSymbol m) => IsDispose(m)
                || (Has(m, releasesAttr, out var r) && FirstString(r) is { } k && k != Kind);
            if (graph.Find(caller, 2, Cleanup) is not { } site) continue;
            if (free != null && graph.Find(free, 2, m => SymbolEqualityComparer.Default.Equals(m, site.Callee)) != null) continue;
            end.ReportDiagnostic(Diagnostic.Create(CleanupInRelease, FirstSiteIn(graph, caller, site), type.Name, site.Callee.ContainingType.Name + "." + site.Callee.Name));
        }
    }

    /// <summary>The role of the [NotifierLifetime] callback <paramref name="method"/> overrides (0 Release, 1 Alloc, 2 Free), or -1.</summary>
    private static int RoleOf(IMethodSymbol method, INamedTypeSymbol lifetimeAttr)
    {
        if (!method.IsOverride) return -1;
        for (var o = method.OverriddenMethod; o != null; o = o.OverriddenMethod)
            if (Has(o, lifetimeAttr, out var a) && a!.ConstructorArguments.Length == 1 && a.ConstructorArguments[0].Value is int role) return role;
        return -1;
    }
}
