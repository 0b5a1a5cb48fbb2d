using Hmm.Dsl;
using Hmm.Runtime.Scheduling;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Notifiers;

/// <summary>
/// Simulates <c>struct mmu_interval_notifier</c>: a driver's subscription to CPU page-table
/// changes in one address interval of one mm, with the read-side collision protocol
/// (<see cref="ReadBegin"/> / <see cref="ReadRetry"/>, reference/kernel-hmm.md B.1, B.2).
/// </summary>
public sealed class IntervalNotifier
{
    private const int NotInserted = 0;
    private const int Inserting = 1;
    private const int Inserted = 2;
    private const int Removing = 3;

    private int _state;
    private MmuNotifierSubscriptions? _subscriptions;

    /// <summary>
    /// The interval's <c>invalidate_seq</c>. Written under the subscription spinlock (insert)
    /// or under the driver's update lock (<see cref="SetSeq"/>); read lock-free by check_retry.
    /// </summary>
    internal ulong InvalidateSeq;

    /// <summary>Creates an interval notifier calling <paramref name="ops"/> (not inserted yet).</summary>
    public IntervalNotifier(IIntervalNotifierOps ops)
    {
        ArgumentNullException.ThrowIfNull(ops);
        Ops = ops;
        Node = new IntervalNode(IntervalNodeKind.Notifier, this);
    }

    /// <summary>The driver callbacks (<c>ops</c>).</summary>
    internal IIntervalNotifierOps Ops { get; }

    /// <summary>The interval-tree node (<c>interval_tree</c>).</summary>
    internal IntervalNode Node { get; }

    /// <summary>The mm this notifier was (last) inserted into; null before the first insert.</summary>
    public AddressSpace? Mm { get; private set; }

    /// <summary>First watched address (inclusive).</summary>
    public ulong Start => Node.Start;

    /// <summary>Last watched address (inclusive), the kernel's <c>interval_tree.last</c>.</summary>
    public ulong Last => Node.Last;

    /// <summary>End of the watched range (exclusive); saturates at <see cref="ulong.MaxValue"/> when <see cref="Last"/> is the top address.</summary>
    public ulong End => Node.Last == ulong.MaxValue ? ulong.MaxValue : Node.Last + 1;

    /// <summary>Whether the notifier is inserted (including an insert deferred until the current invalidation wave ends).</summary>
    public bool IsInserted => Volatile.Read(ref _state) == Inserted;

    /// <summary>
    /// mmu_interval_notifier_insert: watch [<paramref name="start"/>, start + <paramref name="length"/>)
    /// of <paramref name="mm"/>. Returns <see cref="Errno.EOVERFLOW"/> for an empty or wrapping
    /// range and <see cref="Errno.EINVAL"/> when the mm has no users left. Registers the mm's
    /// subscriptions on first use, which takes mmap_lock for write: calling it with mmap_lock
    /// held is a bug (HMM-R11; use <see cref="InsertLocked"/>). May sleep.
    /// </summary>
    [MayBlock]
    [Excludes("mm.MmapLock")]
    [InsertsNotifier]
    public Errno Insert(AddressSpace mm, ulong start, ulong length)
    {
        ArgumentNullException.ThrowIfNull(mm);
        if (mm.MmapLock.IsHeldByCurrentThread)
            throw new KernelBugException("HMM-R11", $"mm {mm.Id}: mmu_interval_notifier_insert called with mmap_lock held; it takes mmap_lock itself (use InsertLocked under the write lock)");
        LockValidator.MightSleep("mmu_interval_notifier_insert");
        return InsertCore(mm, start, length);
    }

    /// <summary>
    /// mmu_interval_notifier_insert_locked: like <see cref="Insert"/>, for a caller that already
    /// holds <see cref="AddressSpace.MmapLock"/> for write (HMM-R11).
    /// </summary>
    [Requires("mm.MmapLock")]
    [InsertsNotifier]
    public Errno InsertLocked(AddressSpace mm, ulong start, ulong length)
    {
        ArgumentNullException.ThrowIfNull(mm);
        if (!mm.MmapLock.IsWriteLocked || !mm.MmapLock.IsHeldByCurrentThread)
            throw new KernelBugException("HMM-R11", $"mm {mm.Id}: mmu_interval_notifier_insert_locked called without holding mmap_lock for write");
        return InsertCore(mm, start, length);
    }

    private Errno InsertCore(AddressSpace mm, ulong start, ulong length)
    {
        if (Interlocked.CompareExchange(ref _state, Inserting, NotInserted) != NotInserted)
            throw new KernelBugException("HMM-R12", $"interval notifier [0x{Start:x}, 0x{Last:x}] inserted again without a remove");
        try
        {
            if (length == 0 || length - 1 > ulong.MaxValue - start) return Fail(Errno.EOVERFLOW);
            if (mm.Users <= 0) return Fail(Errno.EINVAL);
            MmuNotifierSubscriptions subscriptions = MmuNotifierSubscriptions.GetOrInstall(mm);
            Mm = mm;
            _subscriptions = subscriptions;
            subscriptions.InsertInterval(this, start, start + (length - 1));
            Volatile.Write(ref _state, Inserted);
            return Errno.Ok;
        }
        catch
        {
            Volatile.Write(ref _state, NotInserted);
            throw;
        }
    }

    private Errno Fail(Errno errno)
    {
        Volatile.Write(ref _state, NotInserted);
        return errno;
    }

    /// <summary>
    /// mmu_interval_notifier_remove. May sleep: if an invalidation wave covering the tree is in
    /// progress, waits until it ends. After it returns no callback for this notifier is running
    /// or will run. Must not be called from an ops callback (HMM-R10) and must pair with exactly
    /// one insert (HMM-R12), also after the process exited.
    /// </summary>
    [MayBlock]
    [WaitsForCallbacks]
    [RemovesNotifier]
    public void Remove()
    {
        if (MmuNotifierSubscriptions.InCallback)
            throw new KernelBugException("HMM-R10", "mmu_interval_notifier_remove called from inside an mmu_interval_notifier_ops callback; it waits for the running invalidation");
        LockValidator.MightSleep("mmu_interval_notifier_remove");
        if (Interlocked.CompareExchange(ref _state, Removing, Inserted) != Inserted)
            throw new KernelBugException("HMM-R12", "mmu_interval_notifier_remove on a notifier that is not inserted (never inserted, or removed twice)");
        MmuNotifierSubscriptions subscriptions = _subscriptions!;
        try
        {
            ulong waitSeq = subscriptions.RemoveInterval(this);
            MmuNotifierSubscriptions.InvalidateRangeStartMap.Acquire();
            MmuNotifierSubscriptions.InvalidateRangeStartMap.Release();
            if (waitSeq != 0) subscriptions.WaitSeqReleased(waitSeq);
        }
        finally
        {
            Volatile.Write(ref _state, NotInserted);
        }
    }

    /// <summary>
    /// mmu_interval_read_begin: returns the sequence to hand to <see cref="ReadRetry"/>. If an
    /// invalidation of this interval is in progress (its callback already ran in the current
    /// wave, or the notifier was inserted mid-wave), sleeps until the mm's whole wave ends.
    /// Annotated like the kernel's as taking the invalidate_range_start pseudo-lock: never call
    /// it holding a lock the callback takes (HMM-R03). Does not loop; may sleep.
    /// </summary>
    [MayBlock]
    [ReadBegin]
    public ulong ReadBegin()
    {
        MmuNotifierSubscriptions subscriptions = _subscriptions
            ?? throw new KernelBugException("HMM-R02", "mmu_interval_read_begin on a notifier that was never inserted");
        LockValidator.MightSleep("mmu_interval_read_begin");
        return subscriptions.ReadBegin(this);
    }

    /// <summary>
    /// mmu_interval_read_retry: true when an invalidation collided with the read section begun
    /// by <see cref="ReadBegin"/> returning <paramref name="seq"/>. Call under the driver lock
    /// that the callback holds around <see cref="SetSeq"/> (HMM-R06).
    /// </summary>
    [ReadRetry]
    public bool ReadRetry(ulong seq) => FaultInjection.Fails(FaultSite.SeqBusy) || Volatile.Read(ref InvalidateSeq) != seq;

    /// <summary>
    /// mmu_interval_check_retry: lock-free early hint. True is reliable (a later
    /// <see cref="ReadRetry"/> will be true too); false is not.
    /// </summary>
    public bool CheckRetry(ulong seq) => Volatile.Read(ref InvalidateSeq) != seq;

    /// <summary>
    /// mmu_interval_set_seq: every invalidate callback calls it unconditionally with its
    /// <c>curSeq</c>, under the driver lock (HMM-R07).
    /// </summary>
    [SetsSeq]
    public void SetSeq(ulong curSeq) => Volatile.Write(ref InvalidateSeq, curSeq);

    /// <inheritdoc/>
    public override string ToString() => $"IntervalNotifier [0x{Start:x}, 0x{End:x}){(IsInserted ? "" : " (not inserted)")}";
}
