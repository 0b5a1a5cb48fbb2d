using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace Hmm.Analyzers.Flow;

/// <summary>A lock held at a program point: its class key, mode, whether held on every path, where it was taken.</summary>
internal readonly struct HeldLock(string key, bool shared, bool must, Location site, bool fromEntry, bool spin)
{
    public string Key { get; } = key;
    public bool Shared { get; } = shared;
    public bool Must { get; } = must;
    public Location Site { get; } = site;
    public bool FromEntry { get; } = fromEntry;
    public bool Spin { get; } = spin;

    public HeldLock With(bool shared, bool must) => new(Key, shared, must, Site, FromEntry, Spin);
}

/// <summary>A reference owned at a program point (mm, migration, exclusive folio, pin) and the source methods it was handed to.</summary>
internal readonly struct OwnedRef(string key, string kind, bool must, Location site, ImmutableArray<IMethodSymbol> escapes, Location? droppedAt = null)
{
    /// <summary>Where the mmap lock was released while this migration was set up (MIG-R01), reported if a later step uses it.</summary>
    public Location? DroppedAt { get; } = droppedAt;

    public string Key { get; } = key;
    public string Kind { get; } = kind;
    public bool Must { get; } = must;
    public Location Site { get; } = site;
    public ImmutableArray<IMethodSymbol> Escapes { get; } = escapes;
}

/// <summary>What a local holds the result of: a try-lock, a try-reference, or a ReadRetry, refined when a branch tests it.</summary>
internal sealed class PendingTry(ILocalSymbol local, IInvocationOperation call)
{
    public ILocalSymbol Local { get; } = local;
    public IInvocationOperation Call { get; } = call;
}

[Flags]
internal enum FlowFlags
{
    None = 0,
    /// <summary>Must: a Blockable check was true on every path here.</summary>
    KnownBlockable = 1,
    /// <summary>Must: a Blockable check was false on every path here.</summary>
    KnownNonBlockable = 2,
    /// <summary>May: a snapshot (hmm_range_fault output) exists on some path.</summary>
    HasSnapshot = 4,
    /// <summary>May: on some path the snapshot is not validated by ReadRetry under the lock still held.</summary>
    SnapshotPending = 8,
    /// <summary>Must: SetSeq was called on every path.</summary>
    SeqSet = 16,
    /// <summary>Must: NotifierRange.Event was read on every path.</summary>
    EventChecked = 32,
    /// <summary>Must: Owner was read after Event (a path filtering the driver's own MIGRATE/EXCLUSIVE events, HMM-R19).</summary>
    OwnerFiltered = 64,
    /// <summary>May: hmm_range_fault ran since the last ReadBegin on some path.</summary>
    FaultedSinceBegin = 128,
}

/// <summary>The abstract state of the lock/reference/protocol analysis at one program point (immutable).</summary>
internal sealed class FlowState : IEquatable<FlowState>
{
    public const FlowFlags MustFlags = FlowFlags.KnownBlockable | FlowFlags.KnownNonBlockable | FlowFlags.SeqSet | FlowFlags.EventChecked | FlowFlags.OwnerFiltered;

    public static readonly FlowState Empty = new(ImmutableArray<HeldLock>.Empty, ImmutableArray<OwnedRef>.Empty, ImmutableArray<PendingTry>.Empty, FlowFlags.None, null);

    public FlowState(ImmutableArray<HeldLock> locks, ImmutableArray<OwnedRef> refs, ImmutableArray<PendingTry> tries, FlowFlags flags, string? validationLock)
    {
        Locks = locks;
        Refs = refs;
        Tries = tries;
        Flags = flags;
        ValidationLock = validationLock;
    }

    public ImmutableArray<HeldLock> Locks { get; }
    public ImmutableArray<OwnedRef> Refs { get; }
    public ImmutableArray<PendingTry> Tries { get; }
    public FlowFlags Flags { get; }
    /// <summary>The lock ReadRetry validated the snapshot under; releasing it makes the snapshot stale.</summary>
    public string? ValidationLock { get; }

    public bool Has(FlowFlags f) => (Flags & f) == f;

    public FlowState WithFlags(FlowFlags flags) => flags == Flags ? this : new(Locks, Refs, Tries, flags, ValidationLock);
    public FlowState WithLocks(ImmutableArray<HeldLock> locks) => new(locks, Refs, Tries, Flags, ValidationLock);
    public FlowState WithRefs(ImmutableArray<OwnedRef> refs) => new(Locks, refs, Tries, Flags, ValidationLock);
    public FlowState WithTries(ImmutableArray<PendingTry> tries) => new(Locks, Refs, tries, Flags, ValidationLock);
    public FlowState WithValidation(FlowFlags flags, string? validationLock) => new(Locks, Refs, Tries, flags, validationLock);

    public HeldLock? Find(string key)
    {
        foreach (var l in Locks) if (l.Key == key) return l;
        return null;
    }

    public int FindRef(string key)
    {
        for (int i = 0; i < Refs.Length; i++) if (Refs[i].Key == key) return i;
        return -1;
    }

    public static FlowState Join(FlowState a, FlowState b)
    {
        if (ReferenceEquals(a, b)) return a;
        var locks = ImmutableArray.CreateBuilder<HeldLock>();
        foreach (var l in a.Locks)
        {
            var o = b.Find(l.Key);
            locks.Add(o is { } ol ? l.With(l.Shared || ol.Shared, l.Must && ol.Must) : l.With(l.Shared, false));
        }
        foreach (var l in b.Locks) if (a.Find(l.Key) == null) locks.Add(l.With(l.Shared, false));
        var refs = ImmutableArray.CreateBuilder<OwnedRef>();
        foreach (var r in a.Refs)
        {
            int j = b.FindRef(r.Key);
            if (j < 0) { refs.Add(new OwnedRef(r.Key, r.Kind, false, r.Site, r.Escapes, r.DroppedAt)); continue; }
            var o = b.Refs[j];
            // A path that handed the reference to no helper still owns it: what a helper on the other path does can't excuse it.
            var esc = o.Escapes.IsEmpty ? o.Escapes : r.Escapes;
            if (!esc.IsEmpty) foreach (var e in o.Escapes) if (!esc.Contains(e, SymbolEqualityComparer.Default)) esc = esc.Add(e);
            refs.Add(new OwnedRef(r.Key, r.Kind, r.Must && o.Must, r.Site, esc, r.DroppedAt ?? o.DroppedAt));
        }
        foreach (var r in b.Refs) if (a.FindRef(r.Key) < 0) refs.Add(new OwnedRef(r.Key, r.Kind, false, r.Site, r.Escapes, r.DroppedAt));
        var tries = a.Tries;
        foreach (var t in b.Tries) if (!tries.Contains(t)) tries = tries.Add(t);
        var flags = ((a.Flags & b.Flags) & MustFlags) | ((a.Flags | b.Flags) & ~MustFlags);
        var vl = a.ValidationLock == b.ValidationLock ? a.ValidationLock : a.ValidationLock ?? b.ValidationLock;
        return new FlowState(locks.ToImmutable(), refs.ToImmutable(), tries, flags, vl);
    }

    public bool Equals(FlowState? other)
    {
        if (other is null) return false;
        if (ReferenceEquals(this, other)) return true;
        if (Flags != other.Flags || ValidationLock != other.ValidationLock || Locks.Length != other.Locks.Length
            || Refs.Length != other.Refs.Length || Tries.Length != other.Tries.Length) return false;
        foreach (var l in Locks)
            if (other.Find(l.Key) is not { } o || o.Must != l.Must || o.Shared != l.Shared) return false;
        foreach (var r in Refs)
        {
            int j = other.FindRef(r.Key);
            if (j < 0 || other.Refs[j].Must != r.Must || other.Refs[j].Escapes.Length != r.Escapes.Length
                || (other.Refs[j].DroppedAt == null) != (r.DroppedAt == null)) return false;
        }
        foreach (var t in Tries) if (!other.Tries.Contains(t)) return false;
        return true;
    }

    public override bool Equals(object? obj) => obj is FlowState s && Equals(s);

    public override int GetHashCode() => (int)Flags ^ (Locks.Length << 8) ^ (Refs.Length << 16);
}
