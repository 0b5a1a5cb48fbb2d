namespace Hmm.Runtime.Notifiers;

/// <summary>What an <see cref="IntervalNode"/> stands for.</summary>
internal enum IntervalNodeKind
{
    /// <summary>An <see cref="IntervalNotifier"/> (the kernel's itree node).</summary>
    Notifier,
    /// <summary>A held <see cref="RangeLock"/>.</summary>
    RangeLock,
    /// <summary>A registered <see cref="RangeMonitor"/>.</summary>
    Monitor,
    /// <summary>An invalidation between its start and end (needed by range locks).</summary>
    Invalidation,
}

/// <summary>
/// Simulates <c>struct interval_tree_node</c>: one closed interval [<see cref="Start"/>,
/// <see cref="Last"/>] in an augmented balanced tree (<see cref="IntervalTree"/>), plus the
/// intrusive links the per-mm subscription needs (the kernel's <c>deferred_item</c>).
/// All mutable fields are guarded by the owning subscription's spinlock, except that the
/// tree links of interval notifiers are read lock-free while the mm sequence is odd
/// (the tree cannot change then).
/// </summary>
internal sealed class IntervalNode
{
    internal IntervalNode(IntervalNodeKind kind, IntervalNotifier? notifier = null)
    {
        Kind = kind;
        Notifier = notifier;
    }

    /// <summary>What this node stands for.</summary>
    internal IntervalNodeKind Kind { get; }

    /// <summary>The notifier, for <see cref="IntervalNodeKind.Notifier"/> nodes.</summary>
    internal IntervalNotifier? Notifier { get; }

    /// <summary>First address (inclusive).</summary>
    internal ulong Start;

    /// <summary>Last address (inclusive), the kernel's <c>last</c>.</summary>
    internal ulong Last;

    /// <summary>Augmentation: the largest <see cref="Last"/> in this node's subtree (<c>__subtree_last</c>).</summary>
    internal ulong SubtreeLast;

    internal IntervalNode? Left;
    internal IntervalNode? Right;
    internal IntervalNode? Parent;

    /// <summary>AVL height of the subtree rooted here (1 for a leaf).</summary>
    internal int Height;

    /// <summary>Whether the node is linked in a tree (the kernel tests <c>RB_EMPTY_NODE</c>).</summary>
    internal bool InTree;

    /// <summary>For monitors: 1 while no overlapping invalidation started since the last (re)validation.</summary>
    internal int Valid;

    /// <summary>Whether the node is on the deferred insert/remove list.</summary>
    internal bool OnDeferredList;

    internal IntervalNode? DeferredNext;
    internal IntervalNode? DeferredPrev;

    /// <summary>Whether [start, last] (inclusive) intersects this node.</summary>
    internal bool Overlaps(ulong start, ulong last) => Start <= last && start <= Last;
}
