using System.Collections.Concurrent;
using System.Collections.Immutable;
using Microsoft.CodeAnalysis;

namespace Hmm.Analyzers.Flow;

/// <summary>What a lock-changing method does to its lock (Clang's ACQUIRE / ACQUIRE_SHARED / TRY_ACQUIRE / RELEASE).</summary>
internal enum LockEffectKind
{
    Acquire,
    AcquireShared,
    TryAcquire,
    TryAcquireShared,
    Release,
}

/// <summary>One lock effect declared on a method: the kind and the lock expression ("this", a parameter, a path).</summary>
internal readonly struct LockEffect(LockEffectKind kind, string target)
{
    public LockEffectKind Kind { get; } = kind;
    public string Target { get; } = target;
}

/// <summary>A required lock: path and whether shared is enough.</summary>
internal readonly struct LockRequirement(string path, bool shared)
{
    public string Path { get; } = path;
    public bool Shared { get; } = shared;
}

/// <summary>The callback context a method body runs in (DSL attribute or the runtime interface member it implements).</summary>
[Flags]
internal enum CallbackContext
{
    None = 0,
    /// <summary>Inside an mmu-notifier callback (invalidate or release).</summary>
    Notifier = 1,
    /// <summary>The invalidate callback: a NotifierRange says whether it may block.</summary>
    Invalidate = 2,
    /// <summary>A hand-written invalidate (not behind the generated trampoline): must call SetSeq itself.</summary>
    HandWrittenInvalidate = 4,
    /// <summary>Atomic context (page_free): no sleeping.</summary>
    Atomic = 8,
    /// <summary>migrate_to_ram: re-entered from hmm_range_fault on the driver's own device-private pages.</summary>
    MigrateToRam = 16,
    /// <summary>OnMirrorFault: runs after a successful ReadRetry under U.</summary>
    MirrorFault = 32,
    /// <summary>A whole-mm invalidate_range_start/_end: its NotifierRange may be non-blockable (sleeping needs a Blockable check), no SetSeq.</summary>
    NonBlockableRange = 64,
}

/// <summary>The contract of one method as its attributes (and those of what it implements) declare it.</summary>
internal sealed class MethodContract
{
    public static readonly MethodContract Empty = new();

    public ImmutableArray<LockEffect> LockEffects { get; set; } = ImmutableArray<LockEffect>.Empty;
    public ImmutableArray<LockRequirement> Requires { get; set; } = ImmutableArray<LockRequirement>.Empty;
    public ImmutableArray<string> Excludes { get; set; } = ImmutableArray<string>.Empty;
    public bool MayBlock { get; set; }
    public bool MayDropMm { get; set; }
    public bool WaitsForCallbacks { get; set; }
    /// <summary>[InsertsNotifier]: a notifier is live when the method returns (HMM1035's insertion point).</summary>
    public bool InsertsNotifier { get; set; }
    /// <summary>[RemovesNotifier]: no notifier callback runs once the method returns (HMM1035's removal point).</summary>
    public bool RemovesNotifier { get; set; }
    public bool ReadBegin { get; set; }
    public bool Snapshot { get; set; }
    public bool SnapshotFaults { get; set; }
    public bool ReadRetry { get; set; }
    public bool SetsSeq { get; set; }
    public bool ConsumesSnapshot { get; set; }
    public bool Migrates { get; set; }
    /// <summary>Allocates with reclaim (GFP_KERNEL): never under U or in a callback (HMM-R09).</summary>
    public bool MayReclaim { get; set; }
    /// <summary>Waits for queued work that may drop mm references or take U: never from a callback or under U.</summary>
    public bool WaitsForWork { get; set; }
    public string? RefAcquireKind { get; set; }
    public string? RefAcquireTarget { get; set; }
    public int RefAcquireWhen { get; set; }
    public string? RefReleaseKind { get; set; }
    public string? RefReleaseTarget { get; set; }
    public CallbackContext Context { get; set; }

    /// <summary>Whether any attribute changes flow state at a call (so the caller's body needs the CFG walk).</summary>
    public bool ChangesState => !LockEffects.IsEmpty || ReadBegin || Snapshot || ReadRetry || SetsSeq || ConsumesSnapshot || WaitsForCallbacks
        || RefAcquireKind != null || RefReleaseKind != null || !Requires.IsEmpty || !Excludes.IsEmpty;

    /// <summary>Whether a call to it matters to the whole-program rules even without state change.</summary>
    public bool HasEffects => MayBlock || MayDropMm || WaitsForCallbacks || Migrates || ReadBegin || SnapshotFaults || MayReclaim || WaitsForWork;
}

/// <summary>
/// The Hmm.Dsl contract attribute types of one compilation and a cache of method contracts.
/// Built at compilation start; null when the compilation does not reference Hmm.Runtime.
/// </summary>
internal sealed class ContractSet
{
    private readonly ConcurrentDictionary<ISymbol, MethodContract> _contracts = new(SymbolEqualityComparer.Default);
    private readonly ConcurrentDictionary<ISymbol, string?> _guards = new(SymbolEqualityComparer.Default);
    private readonly Dictionary<string, INamedTypeSymbol> _types = new(StringComparer.Ordinal);

    private ContractSet(Compilation compilation)
    {
        Compilation = compilation;
        var runtime = RuntimeTypes.Of(compilation);
        foreach (var name in KnownNames.AllRuntimeTypes)
            if (runtime.Get(name) is { } t) _types[name] = t;
    }

    public Compilation Compilation { get; }

    public static ContractSet? TryCreate(Compilation compilation)
    {
        var set = new ContractSet(compilation);
        return set._types.ContainsKey(KnownNames.MayBlock) && set._types.ContainsKey(KnownNames.Acquires) ? set : null;
    }

    public INamedTypeSymbol? Type(string metadataName) => _types.TryGetValue(metadataName, out var t) ? t : null;

    public bool Is(ITypeSymbol? type, string metadataName) =>
        type != null && _types.TryGetValue(metadataName, out var t) && SymbolEqualityComparer.Default.Equals(type.OriginalDefinition, t);

    private bool IsAttr(AttributeData a, string metadataName) => Is(a.AttributeClass, metadataName);

    /// <summary>The guarding lock path of a field or property, or null.</summary>
    public string? GuardOf(ISymbol member) => _guards.GetOrAdd(member, m =>
    {
        foreach (var a in m.GetAttributes())
            if (IsAttr(a, KnownNames.GuardedBy) && a.ConstructorArguments.Length == 1) return a.ConstructorArguments[0].Value as string;
        return null;
    });

    public MethodContract For(IMethodSymbol method) => _contracts.GetOrAdd(method.OriginalDefinition, m => Build((IMethodSymbol)m));

    private MethodContract Build(IMethodSymbol method)
    {
        MethodContract? c = null;
        Read(method, ref c, own: true);
        // A hand-written implementation inherits the context (and lock contract) of the
        // runtime interface member it implements: IIntervalNotifierOps.Invalidate, IDevPagemapOps.*.
        foreach (var implemented in Implemented(method)) Read(implemented, ref c, own: false);
        // DSL callbacks: the generated trampoline is the caller, and it fixes the context.
        foreach (var a in method.GetAttributes())
        {
            if (IsAttr(a, KnownNames.OnInvalidate)) (c ??= new()).Context |= CallbackContext.Notifier | CallbackContext.Invalidate;
            else if (IsAttr(a, KnownNames.OnRelease)) (c ??= new()).Context |= CallbackContext.Notifier;
            else if (IsAttr(a, KnownNames.OnPageFree)) (c ??= new()).Context |= CallbackContext.Atomic;
            else if (IsAttr(a, KnownNames.OnMigrateToRam)) (c ??= new()).Context |= CallbackContext.MigrateToRam;
            else if (IsAttr(a, KnownNames.OnMirrorFault)) (c ??= new()).Context |= CallbackContext.MirrorFault;
            else if (IsAttr(a, KnownNames.OnMigrated) && UpdateLockName(method.ContainingType) is { } u
                && !(c?.Requires.Any(r => r.Path == u && !r.Shared) ?? false))
                // The generated migration step calls [OnMigrated] with U held (after migrate_vma_pages, as
                // dmirror_migrate_finalize_and_map maps under dmirror->mutex): the callback Requires U, so it
                // may touch [GuardedBy(U)] state, must not take U again, and must not ReadBegin or fault.
                (c ??= new()).Requires = c.Requires.Add(new LockRequirement(u, false));
        }
        // Drivers forward the ops to their own methods (dmirror's MirrorOps → Dmirror.Invalidate,
        // DmirrorChunk.MigrateToRam → DmirrorDevice.MigrateToRam): a method with the callback's
        // shape runs in the callback's context.
        if ((c?.Context ?? 0) == 0 && method.MethodKind == MethodKind.Ordinary)
        {
            bool notifier = false, range = false, vmf = false;
            foreach (var p in method.Parameters)
            {
                notifier |= SymbolNames.Of(p.Type) == "Hmm.Runtime.Notifiers.IntervalNotifier";
                range |= Is(p.Type, KnownNames.NotifierRange);
                vmf |= Is(p.Type, KnownNames.VmFault);
            }
            if (notifier && range && method.ReturnType.SpecialType == SpecialType.System_Boolean)
                (c ??= new()).Context |= CallbackContext.Notifier | CallbackContext.Invalidate | CallbackContext.HandWrittenInvalidate;
            if (vmf) (c ??= new()).Context |= CallbackContext.MigrateToRam;
        }
        return c ?? MethodContract.Empty;
    }

    /// <summary>
    /// The member name of a DSL driver's update lock U: <c>[HmmDriver(UpdateLock = nameof(field))]</c>, else the
    /// mutex the generator declares for it (the name its own lock annotations use), when the generated part is
    /// in the compilation; null for other types.
    /// </summary>
    private string? UpdateLockName(INamedTypeSymbol? type)
    {
        if (type == null) return null;
        foreach (var a in type.GetAttributes())
            if (IsAttr(a, KnownNames.HmmDriver))
            {
                foreach (var n in a.NamedArguments)
                    if (n.Key == "UpdateLock" && n.Value.Value is string s) return s;
                return type.GetMembers(GeneratedUpdateLock).Length > 0 ? GeneratedUpdateLock : null;
            }
        return null;
    }

    /// <summary>The field the generator declares as U when the driver names none (Emitter.ULockName).</summary>
    private const string GeneratedUpdateLock = "__hmmUpdateLock";

    private static IEnumerable<IMethodSymbol> Implemented(IMethodSymbol method)
    {
        if (method.MethodKind == MethodKind.ExplicitInterfaceImplementation)
        {
            foreach (var m in method.ExplicitInterfaceImplementations) yield return m;
            yield break;
        }
        if (method.MethodKind != MethodKind.Ordinary || method.IsStatic) yield break;
        // An override of a runtime ops class's virtual callback (MmuNotifierOps.Release, ...).
        for (var o = method.IsOverride ? method.OverriddenMethod : null; o != null; o = o.OverriddenMethod) yield return o;
        foreach (var iface in method.ContainingType.AllInterfaces)
            foreach (var member in iface.GetMembers(method.Name))
                if (member is IMethodSymbol im && SymbolEqualityComparer.Default.Equals(method.ContainingType.FindImplementationForInterfaceMember(im), method))
                    yield return im;
    }

    private void Read(IMethodSymbol method, ref MethodContract? c, bool own)
    {
        foreach (var a in method.GetAttributes())
        {
            var cls = a.AttributeClass;
            if (cls == null || SymbolNames.Of(cls.ContainingNamespace) != "Hmm.Dsl") continue;
            string? arg0 = a.ConstructorArguments.Length > 0 ? a.ConstructorArguments[0].Value as string : null;
            string? arg1 = a.ConstructorArguments.Length > 1 ? a.ConstructorArguments[1].Value as string : null;
            switch (cls.Name)
            {
                case "MayBlockAttribute": (c ??= new()).MayBlock = true; break;
                case "RequiresAttribute" when arg0 != null: (c ??= new()).Requires = c.Requires.Add(new LockRequirement(arg0, false)); break;
                case "RequiresSharedAttribute" when arg0 != null: (c ??= new()).Requires = c.Requires.Add(new LockRequirement(arg0, true)); break;
                case "ExcludesAttribute" when arg0 != null: (c ??= new()).Excludes = c.Excludes.Add(arg0); break;
                case "AcquiresAttribute" when arg0 != null && own: (c ??= new()).LockEffects = c.LockEffects.Add(new LockEffect(LockEffectKind.Acquire, arg0)); break;
                case "AcquiresSharedAttribute" when arg0 != null && own: (c ??= new()).LockEffects = c.LockEffects.Add(new LockEffect(LockEffectKind.AcquireShared, arg0)); break;
                case "ReleasesAttribute" when arg0 != null && own: (c ??= new()).LockEffects = c.LockEffects.Add(new LockEffect(LockEffectKind.Release, arg0)); break;
                case "TryAcquiresAttribute" when arg0 != null && own:
                    bool shared = false;
                    foreach (var n in a.NamedArguments) if (n.Key == "Shared" && n.Value.Value is bool b) shared = b;
                    (c ??= new()).LockEffects = c.LockEffects.Add(new LockEffect(shared ? LockEffectKind.TryAcquireShared : LockEffectKind.TryAcquire, arg0));
                    break;
                case "AcquiresReferenceAttribute" when arg0 != null && arg1 != null && own:
                    (c ??= new()).RefAcquireKind = arg0;
                    c.RefAcquireTarget = arg1;
                    foreach (var n in a.NamedArguments) if (n.Key == "When" && n.Value.Value is int w) c.RefAcquireWhen = w;
                    break;
                case "ReleasesReferenceAttribute" when arg0 != null && arg1 != null && own:
                    (c ??= new()).RefReleaseKind = arg0;
                    c.RefReleaseTarget = arg1;
                    break;
                case "MayDropMmReferenceAttribute": (c ??= new()).MayDropMm = true; break;
                case "WaitsForCallbacksAttribute": (c ??= new()).WaitsForCallbacks = true; break;
                case "InsertsNotifierAttribute" when own: (c ??= new()).InsertsNotifier = true; break;
                case "RemovesNotifierAttribute" when own: (c ??= new()).RemovesNotifier = true; break;
                case "ReadBeginAttribute": (c ??= new()).ReadBegin = true; break;
                case "SnapshotAttribute":
                    (c ??= new()).Snapshot = true;
                    c.SnapshotFaults = true;
                    foreach (var n in a.NamedArguments) if (n.Key == "Faults" && n.Value.Value is bool f) c.SnapshotFaults = f;
                    break;
                case "ReadRetryAttribute": (c ??= new()).ReadRetry = true; break;
                case "SetsSeqAttribute": (c ??= new()).SetsSeq = true; break;
                case "ConsumesSnapshotAttribute": (c ??= new()).ConsumesSnapshot = true; break;
                case "MigratesAttribute": (c ??= new()).Migrates = true; break;
                case "MayReclaimAttribute": (c ??= new()).MayReclaim = true; break;
                case "WaitsForWorkAttribute": (c ??= new()).WaitsForWork = true; break;
                case "NotifierCallbackAttribute" when !own:
                    bool inv = false;
                    bool nonBlockable = false;
                    foreach (var n in a.NamedArguments)
                    {
                        if (n.Key == "Invalidate" && n.Value.Value is bool v) inv = v;
                        if (n.Key == "NonBlockableRange" && n.Value.Value is bool nb) nonBlockable = nb;
                    }
                    (c ??= new()).Context |= CallbackContext.Notifier | (inv ? CallbackContext.Invalidate | CallbackContext.HandWrittenInvalidate : 0)
                        | (nonBlockable ? CallbackContext.NonBlockableRange : 0);
                    break;
                case "AtomicContextAttribute" when !own: (c ??= new()).Context |= CallbackContext.Atomic; break;
            }
        }
    }

    /// <summary>Whether a BCL method is known to sleep.</summary>
    public static bool IsBlockingBcl(IMethodSymbol method)
    {
        var t = method.ContainingType;
        if (t == null || SymbolNames.Of(t.ContainingNamespace) is not ("System.Threading" or "System.Threading.Tasks")) return false;
        // "Type.Method" compared in two parts: no string built per call.
        string type = SymbolNames.Of(t), name = method.Name;
        foreach (var n in KnownNames.BlockingBclTypes)
            if (n.Length == type.Length + 1 + name.Length && n[type.Length] == '.' && n.StartsWith(type, StringComparison.Ordinal) && n.EndsWith(name, StringComparison.Ordinal)) return true;
        return false;
    }
}
