using System.Collections.Immutable;
using Microsoft.CodeAnalysis;

namespace Hmm.Analyzers.Flow;

/// <summary>A call recorded with the state at the call: what the caller held, whether the range was known blockable, the snapshot's state.</summary>
internal sealed class CallSite(IMethodSymbol callee, MethodContract contract, Location location, ImmutableArray<HeldLock> held, FlowFlags flags, bool blockingBcl)
{
    public IMethodSymbol Callee { get; } = callee;
    public MethodContract Contract { get; } = contract;
    public Location Location { get; } = location;
    public ImmutableArray<HeldLock> Held { get; } = held;
    public FlowFlags Flags { get; } = flags;
    public bool BlockingBcl { get; } = blockingBcl;

    public bool Holds(string key, bool shared)
    {
        foreach (var h in Held) if (h.Key == key && h.Must && (shared || !h.Shared)) return true;
        return false;
    }
}

/// <summary>Why a lock is needed at a point.</summary>
internal enum NeedKind
{
    GuardedAccess,
    RequiresCall,
}

/// <summary>A lock needed at a point of a body where it was not held; deferred to the callers of a private helper.</summary>
internal sealed class LockNeed(string key, bool shared, Location site, string what, NeedKind kind)
{
    public string Key { get; } = key;
    public bool Shared { get; } = shared;
    public Location Site { get; } = site;
    public string What { get; } = what;
    public NeedKind Kind { get; } = kind;
}

/// <summary>An observed or declared lock-order edge: <see cref="To"/> taken while <see cref="From"/> is held.</summary>
internal sealed class LockEdge(string from, string to, Location? site)
{
    public string From { get; } = from;
    public string To { get; } = to;
    public Location? Site { get; } = site;
}

/// <summary>A source method passed an owned reference it may release (resolved at compilation end).</summary>
internal sealed class ParamPass(IMethodSymbol callee, string calleeParam, string? callerParam)
{
    public IMethodSymbol Callee { get; } = callee;
    public string CalleeParam { get; } = calleeParam;
    public string? CallerParam { get; } = callerParam;
}

/// <summary>Everything one body's flow analysis found; the whole-program pass combines them.</summary>
internal sealed class MethodFacts(IMethodSymbol method, CallbackContext context, bool deferrable)
{
    public IMethodSymbol Method { get; } = method;
    public CallbackContext Context { get; } = context;
    /// <summary>Private helpers hand unmet needs to their callers instead of reporting them.</summary>
    public bool Deferrable { get; } = deferrable;
    public List<CallSite> Calls { get; } = [];
    public List<LockNeed> Needs { get; } = [];
    public List<LockEdge> Edges { get; } = [];
    public HashSet<string> Acquired { get; } = new(StringComparer.Ordinal);
    public List<Diagnostic> Diagnostics { get; } = [];
    /// <summary>References still owned at exit that were handed to source methods: leaks unless one of those releases them.</summary>
    public List<OwnedRef> PendingLeaks { get; } = [];
    public HashSet<string> ReleasedParams { get; } = new(StringComparer.Ordinal);
    /// <summary>Field-held references the body releases (a helper dropping the driver's mm reference).</summary>
    public HashSet<string> ReleasedFields { get; } = new(StringComparer.Ordinal);
    public List<ParamPass> ParamPasses { get; } = [];
    /// <summary>Where the body consumes a snapshot it did not take itself (its callers must have validated one).</summary>
    public Location? ConsumesAtEntry { get; set; }
    /// <summary>The body sleeps, yields or starts a read section (ReadBegin): a back-off for its callers' retry loops.</summary>
    public bool BacksOff { get; set; }
    /// <summary>Loops retrying a call on EBUSY with no bound and no back-off of their own (HMM1037).</summary>
    public List<BusyRetryLoop> BusyRetries { get; } = [];
}
