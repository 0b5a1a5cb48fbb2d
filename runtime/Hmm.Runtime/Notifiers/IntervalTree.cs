namespace Hmm.Runtime.Notifiers;

/// <summary>
/// Simulates the kernel's augmented interval tree (<c>include/linux/interval_tree_generic.h</c>)
/// used for <c>mmu_notifier_subscriptions.itree</c>: nodes ordered by start (equal starts keep
/// insertion order), each carrying the largest <c>last</c> of its subtree. The kernel balances
/// with a red-black tree; this one is an AVL tree with parent links, which gives the same
/// O(log n) updates and the same allocation-free, stackless overlap walk
/// (<see cref="First"/> / <see cref="Next"/>): O(log n + hits), safe for many concurrent
/// readers while nobody modifies the tree. Not thread-safe for writers: the owner serialises
/// modifications and keeps readers out while it modifies.
/// </summary>
internal sealed class IntervalTree
{
    private IntervalNode? _root;

    /// <summary>Number of nodes in the tree.</summary>
    internal int Count { get; private set; }

    /// <summary>Whether the tree is empty.</summary>
    internal bool IsEmpty => _root is null;

    /// <summary>interval_tree_insert: links <paramref name="node"/> using its Start/Last.</summary>
    internal void Insert(IntervalNode node)
    {
        if (node.InTree) throw new InvalidOperationException("interval tree node inserted twice");
        node.Left = null;
        node.Right = null;
        node.Height = 1;
        node.SubtreeLast = node.Last;
        node.InTree = true;
        Count++;
        if (_root is null)
        {
            node.Parent = null;
            _root = node;
            return;
        }
        IntervalNode parent = _root;
        while (true)
        {
            if (node.Start < parent.Start)
            {
                if (parent.Left is null) { parent.Left = node; break; }
                parent = parent.Left;
            }
            else
            {
                if (parent.Right is null) { parent.Right = node; break; }
                parent = parent.Right;
            }
        }
        node.Parent = parent;
        Rebalance(parent);
    }

    /// <summary>interval_tree_remove: unlinks <paramref name="node"/>.</summary>
    internal void Remove(IntervalNode node)
    {
        if (!node.InTree) throw new InvalidOperationException("interval tree node removed while not in the tree");
        IntervalNode? fixFrom;
        if (node.Left is not null && node.Right is not null)
        {
            IntervalNode successor = node.Right;
            while (successor.Left is not null) successor = successor.Left;
            if (successor.Parent == node)
            {
                fixFrom = successor;
            }
            else
            {
                IntervalNode sp = successor.Parent!;
                fixFrom = sp;
                sp.Left = successor.Right;
                if (successor.Right is not null) successor.Right.Parent = sp;
                successor.Right = node.Right;
                node.Right.Parent = successor;
            }
            successor.Left = node.Left;
            node.Left.Parent = successor;
            ReplaceChild(node.Parent, node, successor);
        }
        else
        {
            IntervalNode? child = node.Left ?? node.Right;
            ReplaceChild(node.Parent, node, child);
            fixFrom = node.Parent;
        }
        node.Left = null;
        node.Right = null;
        node.Parent = null;
        node.InTree = false;
        Count--;
        Rebalance(fixFrom);
    }

    /// <summary>
    /// interval_tree_iter_first: the leftmost node intersecting [<paramref name="start"/>,
    /// <paramref name="last"/>] (both inclusive), or null.
    /// </summary>
    internal IntervalNode? First(ulong start, ulong last)
    {
        IntervalNode? root = _root;
        if (root is null || root.SubtreeLast < start) return null;
        return SubtreeSearch(root, start, last);
    }

    /// <summary>
    /// interval_tree_iter_next: the next node after <paramref name="node"/> (in start order)
    /// intersecting [<paramref name="start"/>, <paramref name="last"/>], or null.
    /// </summary>
    internal static IntervalNode? Next(IntervalNode node, ulong start, ulong last)
    {
        IntervalNode? rightChild = node.Right;
        while (true)
        {
            // Invariant: node.Start <= last and rightChild == node.Right.
            if (rightChild is not null && start <= rightChild.SubtreeLast)
                return SubtreeSearch(rightChild, start, last);

            // Climb until we arrive from a left child.
            IntervalNode previous;
            do
            {
                IntervalNode? parent = node.Parent;
                if (parent is null) return null;
                previous = node;
                node = parent;
                rightChild = node.Right;
            }
            while (previous == rightChild);

            if (last < node.Start) return null;
            if (start <= node.Last) return node;
        }
    }

    /// <summary>Leftmost node of the subtree at <paramref name="node"/> intersecting the query; the caller guarantees start &lt;= node.SubtreeLast.</summary>
    private static IntervalNode? SubtreeSearch(IntervalNode node, ulong start, ulong last)
    {
        while (true)
        {
            IntervalNode? left = node.Left;
            if (left is not null && start <= left.SubtreeLast)
            {
                // Something on the left reaches start; the leftmost such node decides.
                node = left;
                continue;
            }
            if (node.Start <= last)
            {
                if (start <= node.Last) return node;
                IntervalNode? right = node.Right;
                if (right is not null && start <= right.SubtreeLast)
                {
                    node = right;
                    continue;
                }
            }
            return null;
        }
    }

    private void ReplaceChild(IntervalNode? parent, IntervalNode oldChild, IntervalNode? newChild)
    {
        if (newChild is not null) newChild.Parent = parent;
        if (parent is null) _root = newChild;
        else if (parent.Left == oldChild) parent.Left = newChild;
        else parent.Right = newChild;
    }

    private static int HeightOf(IntervalNode? n) => n is null ? 0 : n.Height;

    private static void Update(IntervalNode n)
    {
        int hl = HeightOf(n.Left), hr = HeightOf(n.Right);
        n.Height = 1 + (hl > hr ? hl : hr);
        ulong max = n.Last;
        if (n.Left is not null && n.Left.SubtreeLast > max) max = n.Left.SubtreeLast;
        if (n.Right is not null && n.Right.SubtreeLast > max) max = n.Right.SubtreeLast;
        n.SubtreeLast = max;
    }

    /// <summary>Recomputes augmentation and restores AVL balance from <paramref name="n"/> up to the root.</summary>
    private void Rebalance(IntervalNode? n)
    {
        while (n is not null)
        {
            Update(n);
            int balance = HeightOf(n.Left) - HeightOf(n.Right);
            if (balance > 1)
            {
                IntervalNode l = n.Left!;
                if (HeightOf(l.Left) < HeightOf(l.Right)) RotateLeft(l);
                n = RotateRight(n);
            }
            else if (balance < -1)
            {
                IntervalNode r = n.Right!;
                if (HeightOf(r.Right) < HeightOf(r.Left)) RotateRight(r);
                n = RotateLeft(n);
            }
            n = n.Parent;
        }
    }

    private IntervalNode RotateLeft(IntervalNode x)
    {
        IntervalNode y = x.Right!;
        x.Right = y.Left;
        if (y.Left is not null) y.Left.Parent = x;
        ReplaceChild(x.Parent, x, y);
        y.Left = x;
        x.Parent = y;
        Update(x);
        Update(y);
        return y;
    }

    private IntervalNode RotateRight(IntervalNode x)
    {
        IntervalNode y = x.Left!;
        x.Left = y.Right;
        if (y.Right is not null) y.Right.Parent = x;
        ReplaceChild(x.Parent, x, y);
        y.Right = x;
        x.Parent = y;
        Update(x);
        Update(y);
        return y;
    }

    /// <summary>Checks order, parent links, AVL balance and the subtree-last augmentation (tests, invariants).</summary>
    internal void Validate()
    {
        if (_root is not null && _root.Parent is not null) throw new InvalidOperationException("root has a parent");
        int count = 0;
        ValidateSubtree(_root, ref count);
        if (count != Count) throw new InvalidOperationException($"tree holds {count} nodes, Count says {Count}");
    }

    private static (int Height, ulong SubtreeLast) ValidateSubtree(IntervalNode? n, ref int count)
    {
        if (n is null) return (0, 0);
        count++;
        if (!n.InTree) throw new InvalidOperationException("linked node not marked InTree");
        if (n.Left is not null && (n.Left.Parent != n || n.Left.Start > n.Start)) throw new InvalidOperationException("bad left link/order");
        if (n.Right is not null && (n.Right.Parent != n || n.Right.Start < n.Start)) throw new InvalidOperationException("bad right link/order");
        var (hl, ml) = ValidateSubtree(n.Left, ref count);
        var (hr, mr) = ValidateSubtree(n.Right, ref count);
        if (Math.Abs(hl - hr) > 1) throw new InvalidOperationException("AVL balance broken");
        int h = 1 + Math.Max(hl, hr);
        if (h != n.Height) throw new InvalidOperationException("stale height");
        ulong max = n.Last;
        if (n.Left is not null) max = Math.Max(max, ml);
        if (n.Right is not null) max = Math.Max(max, mr);
        if (max != n.SubtreeLast) throw new InvalidOperationException("stale subtree last");
        return (h, max);
    }
}
