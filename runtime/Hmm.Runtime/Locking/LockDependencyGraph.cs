using System.Diagnostics;
using System.Text;

namespace Hmm.Runtime.Locking;

/// <summary>
/// The lock-class dependency graph of lockdep (kernel/locking/lockdep.c): a node per lock
/// class (class name + nesting subclass), an edge A→B the first time any thread takes B
/// with a blocking acquire while holding A. Because the graph outlives the threads that
/// built it, an AB/BA inversion is reported even when the two orders ran at different
/// times and never actually deadlocked — that is the whole point of lockdep.
/// </summary>
/// <remarks>
/// Invariant: the graph is acyclic. An edge is only added after checking that the reverse
/// path does not exist, so an edge that is already present needs no new search; the common
/// case (a known order repeated) is one dictionary lookup per held lock.
/// </remarks>
internal sealed class LockDependencyGraph
{
    private const int MaxSiteFrames = 8;

    // Guards every node and edge below. A System.Threading.Lock, not a Hmm primitive: the
    // validator must not validate itself.
    private readonly Lock _gate = new();
    private readonly Dictionary<(string Name, int Subclass), LockClassNode> _classes = new();

    /// <summary>Number of lock classes seen (tests, diagnostics).</summary>
    public int ClassCount
    {
        get
        {
            lock (_gate)
            {
                return _classes.Count;
            }
        }
    }

    /// <summary>Forgets every class and edge.</summary>
    public void Clear()
    {
        lock (_gate)
        {
            _classes.Clear();
        }
    }

    /// <summary>
    /// Checks a blocking acquisition of <paramref name="instance"/> against every lock the
    /// thread already holds and records the new dependencies. Throws before anything is
    /// recorded if the acquisition is recursive or closes a cycle.
    /// </summary>
    public void CheckAcquire(HeldLocks held, object instance, string className, int subclass, LockKind kind)
    {
        lock (_gate)
        {
            LockClassNode next = Node(className, subclass);
            string? site = null;
            for (int i = 0; i < held.Count; i++)
            {
                ref readonly HeldLock prev = ref held[i];
                if (ReferenceEquals(prev.Instance, instance) || (prev.ClassName == className && prev.Subclass == subclass))
                {
                    throw RecursiveLocking(in prev, ReferenceEquals(prev.Instance, instance), className, subclass, kind);
                }

                LockClassNode from = Node(prev.ClassName, prev.Subclass);
                if (from.Out.ContainsKey(next))
                {
                    continue;
                }

                List<LockClassNode>? chain = FindPath(next, from);
                if (chain is not null)
                {
                    throw CircularDependency(chain, in prev, className, subclass, kind);
                }

                // Captured once per acquisition and only for edges never seen before, so a
                // steady-state run pays nothing for it.
                site ??= CaptureSite();
                from.Out.Add(next, site);
            }
        }
    }

    /// <summary>
    /// Records the dependency <paramref name="before"/> → <paramref name="after"/> (subclass 0)
    /// as if a thread had taken them in that order, without taking anything: the order a
    /// subsystem documents is known before any code path exercises it, so the first inverted
    /// acquisition is reported even if the documented order itself never ran. Throws if the
    /// opposite order is already recorded.
    /// </summary>
    public void DeclareOrder(string before, string after)
    {
        lock (_gate)
        {
            LockClassNode from = Node(before, 0);
            LockClassNode next = Node(after, 0);
            if (from.Out.ContainsKey(next))
            {
                return;
            }

            if (FindPath(next, from) is not null)
            {
                throw new KernelBugException(LockValidator.Rule,
                    $"possible circular locking dependency detected: the declared order '{before}' -> '{after}' inverts one already recorded.");
            }

            from.Out.Add(next, "    [declared order]\n" + CaptureSite());
        }
    }

    /// <summary>Whether the edge <paramref name="from"/> → <paramref name="to"/> (subclass 0) was recorded (tests).</summary>
    public bool HasDependency(string from, string to)
    {
        lock (_gate)
        {
            return _classes.TryGetValue((from, 0), out LockClassNode? a)
                && _classes.TryGetValue((to, 0), out LockClassNode? b)
                && a.Out.ContainsKey(b);
        }
    }

    /// <summary>
    /// A short, readable stack of the acquisition: the frames outside the Locking folder
    /// (who called Lock, not how Lock works), prefixed with the thread.
    /// </summary>
    public static string CaptureSite()
    {
        string trace = new StackTrace(1, fNeedFileInfo: false).ToString();
        var sb = new StringBuilder();
        Thread t = Thread.CurrentThread;
        sb.Append("    [thread '").Append(t.Name ?? "unnamed").Append("' #").Append(Environment.CurrentManagedThreadId).Append(']');
        int frames = 0;
        foreach (string line in trace.Split('\n'))
        {
            string frame = line.Trim();
            if (frame.Length == 0 || frame.Contains(" Hmm.Runtime.Locking.", StringComparison.Ordinal))
            {
                continue;
            }

            sb.Append("\n      ").Append(frame);
            if (++frames == MaxSiteFrames)
            {
                break;
            }
        }

        return sb.ToString();
    }

    private LockClassNode Node(string name, int subclass)
    {
        if (!_classes.TryGetValue((name, subclass), out LockClassNode? node))
        {
            node = new LockClassNode(name, subclass);
            _classes.Add((name, subclass), node);
        }

        return node;
    }

    /// <summary>Breadth-first search for a path <paramref name="from"/> →…→ <paramref name="to"/>; null if none.</summary>
    private static List<LockClassNode>? FindPath(LockClassNode from, LockClassNode to)
    {
        var parent = new Dictionary<LockClassNode, LockClassNode?> { [from] = null };
        var queue = new Queue<LockClassNode>();
        queue.Enqueue(from);
        while (queue.Count > 0)
        {
            LockClassNode n = queue.Dequeue();
            if (n == to)
            {
                var path = new List<LockClassNode>();
                for (LockClassNode? p = n; p is not null; p = parent[p])
                {
                    path.Add(p);
                }

                path.Reverse();
                return path;
            }

            foreach (LockClassNode m in n.Out.Keys)
            {
                if (parent.TryAdd(m, n))
                {
                    queue.Enqueue(m);
                }
            }
        }

        return null;
    }

    private static KernelBugException CircularDependency(
        List<LockClassNode> chain, in HeldLock held, string className, int subclass, LockKind kind)
    {
        string wanted = LockValidator.DisplayClass(className, subclass);
        string holding = LockValidator.DisplayClass(held.ClassName, held.Subclass);
        var sb = new StringBuilder();
        sb.Append("possible circular locking dependency detected: thread #").Append(Environment.CurrentManagedThreadId)
          .Append(" is trying to acquire ").Append(LockValidator.Describe(kind, className, subclass))
          .Append(" while holding ").Append(held.Describe()).Append(", but the opposite order '")
          .Append(wanted).Append(chain.Count > 2 ? "' -> ... -> '" : "' -> '").Append(holding).Append("' is already recorded:");
        for (int i = 0; i + 1 < chain.Count; i++)
        {
            LockClassNode a = chain[i];
            LockClassNode b = chain[i + 1];
            sb.Append("\n  '").Append(a.Display).Append("' -> '").Append(b.Display).Append("' first recorded at:\n")
              .Append(a.Out[b]);
        }

        sb.Append("\n  current acquisition of '").Append(wanted).Append("' while holding '").Append(holding).Append("':\n")
          .Append(CaptureSite());
        return new KernelBugException(LockValidator.Rule, sb.ToString());
    }

    private static KernelBugException RecursiveLocking(
        in HeldLock held, bool sameInstance, string className, int subclass, LockKind kind)
    {
        var sb = new StringBuilder();
        sb.Append("possible recursive locking detected: thread #").Append(Environment.CurrentManagedThreadId)
          .Append(" is trying to acquire ").Append(LockValidator.Describe(kind, className, subclass))
          .Append(" but already holds ").Append(held.Describe());
        sb.Append(sameInstance
            ? " — the very same lock, which would deadlock on itself."
            : " — another lock of the same class; if this nesting is intended, take the inner lock with a nested subclass (Lock(1) / WriteLockNested(1)).");
        sb.Append("\n  current acquisition:\n").Append(CaptureSite());
        return new KernelBugException(LockValidator.Rule, sb.ToString());
    }

    /// <summary>One lock class (lockdep's <c>struct lock_class</c>) and its forward dependencies.</summary>
    private sealed class LockClassNode
    {
        public LockClassNode(string name, int subclass)
        {
            Name = name;
            Subclass = subclass;
            Display = LockValidator.DisplayClass(name, subclass);
        }

        public string Name { get; }

        public int Subclass { get; }

        public string Display { get; }

        /// <summary>Classes taken while holding this one, with the site that first did it.</summary>
        public Dictionary<LockClassNode, string> Out { get; } = new();
    }
}
