using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.Mm;
using SpinLock = Hmm.Runtime.Locking.SpinLock;

namespace Hmm.Samples.Mlx5;

/// <summary>
/// The children of an implicit ODP MR (drivers.md B.3): the parent's KSM table has one entry per
/// 1 GiB slot of the address space (<c>MLX5_IMR_MTT_SIZE</c>), all pointing at the null mkey at
/// first; the first fault in a slot creates a child umem with its own interval notifier over that
/// 1 GiB (<c>implicit_get_child_mr</c>), inserted compare-and-swap so a racing creator's child wins
/// and is reused, and the KSM entry is rewritten. A child whose last page is invalidated is reaped
/// asynchronously (<c>destroy_unused_implicit_child_mr</c>): unlinked (KSM back to the null key) only
/// while nobody uses it, then destroyed.
/// </summary>
public sealed class ImplicitOdp
{
    /// <summary>log2 of the bytes one child covers (1 GiB).</summary>
    public const int ChildShift = 30;

    /// <summary>Bytes one child covers.</summary>
    public const ulong ChildBytes = 1UL << ChildShift;

    /// <summary>KSM entries of the parent: TASK_SIZE / 1 GiB (131 072 for a 47-bit user space).</summary>
    public const long KsmEntries = (long)((AddressSpace.TaskSize + ChildBytes - 1) >> ChildShift);

    private readonly SpinLock _lock = new("mlx5_ib.implicit_children");
    private readonly Dictionary<ulong, OdpUmem> _children = new();
    private readonly Mlx5IbDevice _nic;
    private readonly MemoryRegion _mr;
    private long _ksmUpdates, _retriesOfReaped;

    internal ImplicitOdp(Mlx5IbDevice nic, MemoryRegion mr)
    {
        _nic = nic;
        _mr = mr;
    }

    /// <summary>Children alive (KSM entries not pointing at the null mkey).</summary>
    public int ChildCount
    {
        get { _lock.Lock(); try { return _children.Count; } finally { _lock.Unlock(); } }
    }

    /// <summary>KSM entries rewritten (a child linked or unlinked).</summary>
    public long KsmUpdates => Interlocked.Read(ref _ksmUpdates);

    /// <summary>Whether slot <paramref name="va"/> &gt;&gt; 30 has a child.</summary>
    public bool HasChild(ulong va)
    {
        _lock.Lock();
        try { return _children.ContainsKey(va >> ChildShift); }
        finally { _lock.Unlock(); }
    }

    /// <summary>Sequence retries of every child's generated fault loop (reaped ones included).</summary>
    public long FaultRetries
    {
        get
        {
            long n = Interlocked.Read(ref _retriesOfReaped);
            foreach (var c in Children()) n += c.FaultRetries;
            return n;
        }
    }

    /// <summary>Valid MTT entries over every child.</summary>
    public long MappedPages
    {
        get
        {
            long n = 0;
            foreach (var c in Children()) n += c.MappedPages;
            return n;
        }
    }

    /// <summary>Stale MTT entries over every child (<see cref="OdpUmem.StaleEntries"/>).</summary>
    [MayBlock]
    public int StaleEntries()
    {
        int n = 0;
        foreach (var c in Children()) n += c.StaleEntries();
        return n;
    }

    private OdpUmem[] Children()
    {
        _lock.Lock();
        try { return [.. _children.Values]; }
        finally { _lock.Unlock(); }
    }

    /// <summary>The child of <paramref name="va"/>'s slot with a use taken, or null when the KSM entry is the null mkey (an access there faults).</summary>
    internal OdpUmem? Acquire(ulong va)
    {
        _lock.Lock();
        try
        {
            if (!_children.TryGetValue(va >> ChildShift, out var child)) return null;
            Interlocked.Increment(ref child.ChildUsers);
            return child;
        }
        finally { _lock.Unlock(); }
    }

    /// <summary>Drops a use taken by <see cref="Acquire"/> or <see cref="AcquireOrCreate"/>.</summary>
    internal static void Release(OdpUmem child) => Interlocked.Decrement(ref child.ChildUsers);

    /// <summary>
    /// implicit_get_child_mr: the slot's child with a use taken, created if absent — a new umem
    /// registered over the 1 GiB (its own notifier), inserted compare-and-swap; a racing creator's
    /// child wins and ours is destroyed. Clipped to the user address space.
    /// </summary>
    internal Errno AcquireOrCreate(ulong va, out OdpUmem? child)
    {
        child = Acquire(va);
        if (child != null) return Errno.Ok;
        _mr.Counters.AddNullKeyFault();
        ulong start = va & ~(ChildBytes - 1);
        ulong end = Math.Min(start + ChildBytes, AddressSpace.TaskSize);
        var created = new OdpUmem(_nic, _mr.Pd.Process, _mr.Counters, start, end, _mr.Writable, this);
        var e = created.Register();
        if (e != Errno.Ok) return e;
        bool won;
        _lock.Lock();
        try
        {
            won = !_children.TryGetValue(va >> ChildShift, out child);
            if (won)
            {
                child = created;
                _children.Add(va >> ChildShift, created);
                Interlocked.Increment(ref _ksmUpdates);
            }
            Interlocked.Increment(ref child!.ChildUsers);
        }
        finally { _lock.Unlock(); }
        if (won) _mr.Counters.AddChildCreated();
        else created.Release();
        return Errno.Ok;
    }

    /// <summary>
    /// The reaper's work for a child found empty by its invalidation: unlink it (KSM entry back to the
    /// null mkey) only if it is still empty and unused, then destroy it. A fault that got there first
    /// keeps it.
    /// </summary>
    internal void Reap(OdpUmem child)
    {
        bool unlinked = false;
        _lock.Lock();
        try
        {
            ulong slot = child.Start >> ChildShift;
            if (Volatile.Read(ref child.ChildUsers) == 0 && child.MappedPages == 0
                && _children.TryGetValue(slot, out var current) && ReferenceEquals(current, child))
            {
                _children.Remove(slot);
                Interlocked.Increment(ref _ksmUpdates);
                unlinked = true;
            }
        }
        finally { _lock.Unlock(); }
        if (!unlinked) return;
        Interlocked.Add(ref _retriesOfReaped, child.FaultRetries);
        child.Release();
        _mr.Counters.AddChildReaped();
    }

    /// <summary>Deregistration of the parent: every child destroyed (no user left: the mkey drained first).</summary>
    internal void DestroyAll()
    {
        OdpUmem[] all;
        _lock.Lock();
        try
        {
            all = [.. _children.Values];
            _children.Clear();
        }
        finally { _lock.Unlock(); }
        foreach (var c in all) c.Release();
    }
}
