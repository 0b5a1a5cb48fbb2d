using Hmm.Runtime.Scheduling;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Mm;
using KernelSpinLock = Hmm.Runtime.Locking.SpinLock;

namespace Hmm.Runtime.Notifiers;

/// <summary>
/// Simulates <c>struct mmu_notifier_subscriptions</c> (mm->notifier_subscriptions) and the
/// interval half of mm/mmu_notifier.c: the per-mm invalidation sequence, the count of
/// invalidations in progress, the interval tree, the deferred insert/remove list, the wait
/// queue and the spinlock guarding them (reference/kernel-hmm.md A.7, B.1–B.3).
/// <para>
/// Sequence state machine: <c>seq</c> starts at 2. Even with no invalidation active = idle.
/// An invalidation start that hits an interval makes it odd ("fully excluded": the interval
/// tree is frozen, inserts/removes are deferred); one that hits nothing leaves it even
/// ("partially excluded"). When the last active invalidation ends and seq is odd, seq becomes
/// even again, deferred work is applied and waiters are woken.
/// </para>
/// It also carries the range locks and range monitors of <see cref="RangeLock"/> /
/// <see cref="RangeMonitor"/> in a second tree of the same kind, together with one node per
/// invalidation in progress so a range lock can wait for overlapping ones.
/// </summary>
internal sealed partial class MmuNotifierSubscriptions : IMmuNotifierHook
{
    /// <summary>
    /// The kernel's <c>__mmu_notifier_invalidate_range_start_map</c>: lockdep pseudo-lock taken
    /// around invalidation dispatch and by read_begin/remove, so a read_begin made while holding a
    /// lock the callbacks take is reported (HMM-R03, HMM-R10).
    /// </summary>
    internal static readonly LockMap InvalidateRangeStartMap = new("mmu_notifier_invalidate_range_start");

    /// <summary>Depth of interval callbacks running on this thread (detects HMM-R10).</summary>
    [ThreadStatic] private static int t_callbackDepth;

    private readonly KernelSpinLock _lock = new("mmu_notifier_subscriptions.lock");
    private readonly WaitQueue _waitQueue = new("mmu_notifier_subscriptions.wq");
    private readonly IntervalTree _intervals = new();
    private readonly IntervalTree _guards = new();
    private ulong _invalidateSeq = 2;
    private int _activeInvalidateRanges;
    private IntervalNode? _deferredHead;
    private IntervalNode? _spareInvalidationNodes;
    private ulong _guardGeneration;
    private int _guardWaiters;

    private MmuNotifierSubscriptions(AddressSpace mm) => Mm = mm;

    /// <summary>The address space this subscription hangs off.</summary>
    internal AddressSpace Mm { get; }

    /// <summary>Current <c>invalidate_seq</c> (tests, invariants).</summary>
    internal ulong Seq => Volatile.Read(ref _invalidateSeq);

    /// <summary>Current <c>active_invalidate_ranges</c> (tests, invariants).</summary>
    internal int ActiveInvalidateRanges { get { _lock.Lock(); try { return _activeInvalidateRanges; } finally { _lock.Unlock(); } } }

    /// <summary>Number of interval notifiers linked in the tree (deferred inserts excluded).</summary>
    internal int IntervalCount { get { _lock.Lock(); try { return _intervals.Count; } finally { _lock.Unlock(); } } }

    /// <summary>Whether an interval callback is running on the calling thread.</summary>
    internal static bool InCallback => t_callbackDepth > 0;

    /// <summary>
    /// Returns the mm's subscriptions, registering them on first use (mmu_notifier_register):
    /// the kernel takes mmap_lock for write to do so, so we do too unless the caller already
    /// holds it.
    /// </summary>
    internal static MmuNotifierSubscriptions GetOrInstall(AddressSpace mm)
    {
        if (mm.NotifierHook is { } existing) return AsSubscriptions(existing);
        var fresh = new MmuNotifierSubscriptions(mm);
        if (mm.MmapLock.IsHeldByCurrentThread) return AsSubscriptions(mm.InstallNotifierHook(fresh));
        mm.MmapLock.WriteLock();
        try
        {
            return AsSubscriptions(mm.InstallNotifierHook(fresh));
        }
        finally
        {
            mm.MmapLock.WriteUnlock();
        }
    }

    private static MmuNotifierSubscriptions AsSubscriptions(IMmuNotifierHook hook)
        => hook as MmuNotifierSubscriptions
           ?? throw new InvalidOperationException($"mm notifier hook is a {hook.GetType().Name}, not MmuNotifierSubscriptions");

    // ---------------------------------------------------------------- interval notifiers

    /// <summary>__mmu_interval_notifier_insert under the spinlock (A.7 insert rules).</summary>
    internal void InsertInterval(IntervalNotifier notifier, ulong start, ulong last)
    {
        IntervalNode node = notifier.Node;
        _lock.Lock();
        try
        {
            node.Start = start;
            node.Last = last;
            if (_activeInvalidateRanges != 0)
            {
                if ((_invalidateSeq & 1) != 0)
                {
                    // Fully excluded: the tree is frozen; link it when the wave ends.
                    AddDeferred(node);
                }
                else
                {
                    // Partially excluded: nobody walks the tree now, but an invalidation is in
                    // progress whose range might cover the new interval: force the wave odd.
                    Volatile.Write(ref _invalidateSeq, _invalidateSeq | 1);
                    _intervals.Insert(node);
                }
                notifier.InvalidateSeq = _invalidateSeq;
            }
            else
            {
                // Idle: an odd value that can never equal the current (even) seq.
                notifier.InvalidateSeq = _invalidateSeq - 1;
                _intervals.Insert(node);
            }
        }
        finally
        {
            _lock.Unlock();
        }
    }

    /// <summary>
    /// mmu_interval_notifier_remove: unlinks now when idle, drops a still-deferred insert, or
    /// defers the removal and returns the seq to wait on (0 = no wait).
    /// </summary>
    internal ulong RemoveInterval(IntervalNotifier notifier)
    {
        IntervalNode node = notifier.Node;
        _lock.Lock();
        try
        {
            if ((_invalidateSeq & 1) != 0)
            {
                if (!node.InTree)
                {
                    // Inserted mid-wave and never linked: forget the pending insert.
                    RemoveDeferred(node);
                    return 0;
                }
                AddDeferred(node);
                return _invalidateSeq;
            }
            _intervals.Remove(node);
            return 0;
        }
        finally
        {
            _lock.Unlock();
        }
    }

    /// <summary>Sleeps until the mm seq moves past <paramref name="seq"/> (mmu_interval_seq_released).</summary>
    internal void WaitSeqReleased(ulong seq)
        => _waitQueue.WaitEvent((this, seq), static s => Volatile.Read(ref s.Item1._invalidateSeq) != s.Item2);

    /// <summary>mmu_interval_read_begin.</summary>
    internal ulong ReadBegin(IntervalNotifier notifier)
    {
        ulong seq;
        bool invalidating;
        _lock.Lock();
        try
        {
            seq = Volatile.Read(ref notifier.InvalidateSeq);
            invalidating = seq == _invalidateSeq;
        }
        finally
        {
            _lock.Unlock();
        }
        InvalidateRangeStartMap.Acquire();
        InvalidateRangeStartMap.Release();
        if (invalidating) WaitSeqReleased(seq);
        return seq;
    }

    // ---------------------------------------------------------------- IMmuNotifierHook

    /// <inheritdoc/>
    public bool InvalidateRangeStart(in NotifierRange range)
    {
        if (range.Blockable) LockValidator.MightSleep("mmu_notifier_invalidate_range_start");
        InvalidateRangeStartMap.Acquire();
        try
        {
            // Intervals first; when one refuses, the whole-mm notifiers are not called at all.
            if (!StartCore(in range)) return false;
            if (!HasSubscribers) return true;
            bool started;
            try
            {
                started = StartSubscribers(in range);
            }
            catch
            {
                EndCore(tracked: true, range.Start, LastOf(in range));
                throw;
            }
            if (started) return true;
            // A whole-mm notifier refused: the caller calls no end, so undo the interval half
            // here (the kernel's __mmu_notifier_invalidate_range_start leaves it counted).
            EndCore(tracked: true, range.Start, LastOf(in range));
            return false;
        }
        finally
        {
            InvalidateRangeStartMap.Release();
        }
    }

    /// <inheritdoc/>
    public void InvalidateRangeEnd(in NotifierRange range)
    {
        if (range.Blockable) LockValidator.MightSleep("mmu_notifier_invalidate_range_end");
        ulong last = LastOf(in range);
        InvalidateRangeStartMap.Acquire();
        try
        {
            EndCore(tracked: true, range.Start, last);
            if (HasSubscribers) EndSubscribers(in range);
        }
        finally
        {
            InvalidateRangeStartMap.Release();
        }
    }

    /// <inheritdoc/>
    public void Release(AddressSpace mm)
    {
        if (mm != Mm) throw new ArgumentException("mmu_notifier_release for another mm", nameof(mm));
        LockValidator.MightSleep("mmu_notifier_release");
        IntervalNode? first;
        ulong curSeq;
        _lock.Lock();
        try
        {
            InvalidateMonitors(0, ulong.MaxValue);
            _activeInvalidateRanges++;
            first = _intervals.First(0, ulong.MaxValue - 1);
            if (first is not null) Volatile.Write(ref _invalidateSeq, _invalidateSeq | 1);
            curSeq = _invalidateSeq;
        }
        finally
        {
            _lock.Unlock();
        }
        var range = new NotifierRange(mm, 0, ulong.MaxValue, NotifyEvent.Release, blockable: true);
        try
        {
            for (IntervalNode? node = first; node is not null; node = IntervalTree.Next(node, 0, ulong.MaxValue - 1))
            {
                if (!Invoke(node.Notifier!, in range, curSeq))
                    throw new KernelBugException("HMM-R08", $"mm {Mm.Id}: an interval notifier [0x{node.Start:x}, 0x{node.Last:x}] refused MMU_NOTIFY_RELEASE, which is blockable and must succeed");
            }
        }
        finally
        {
            EndCore(tracked: false, 0, 0);
        }
        // Then the whole-mm notifiers' release (__mmu_notifier_release: itree, then hlist).
        ReleaseSubscribers();
    }

    private static ulong LastOf(in NotifierRange range)
    {
        if (range.End <= range.Start)
            throw new ArgumentException($"empty notifier range {range}", nameof(range));
        return range.End - 1;
    }

    private bool StartCore(in NotifierRange range)
    {
        ulong start = range.Start, last = LastOf(in range);
        IntervalNode? first;
        ulong curSeq;
        _lock.Lock();
        try
        {
            // A held range lock overlapping us holds off the CPU-side update.
            while (OverlapsKind(start, last, IntervalNodeKind.RangeLock))
            {
                if (!range.Blockable) return false;
                WaitGuardChangeLocked();
            }
            _guards.Insert(RentInvalidationNode(start, last));
            InvalidateMonitors(start, last);
            _activeInvalidateRanges++;
            first = _intervals.First(start, last);
            if (first is not null) Volatile.Write(ref _invalidateSeq, _invalidateSeq | 1);
            curSeq = _invalidateSeq;
        }
        finally
        {
            _lock.Unlock();
        }
        if (first is null) return true;

        bool completed;
        try
        {
            if (range.Blockable)
            {
                completed = RunCallbacks(first, in range, last, curSeq);
            }
            else
            {
                using (LockValidator.EnterNonBlockable("mmu_interval_notifier_ops.invalidate (non-blockable)"))
                    completed = RunCallbacks(first, in range, last, curSeq);
            }
        }
        catch
        {
            // The caller will not call end for a start that threw: undo it like a failed one.
            EndCore(tracked: true, start, last);
            throw;
        }
        if (!completed)
        {
            // -EAGAIN: undo this start exactly as its end would (mn_itree_inv_end); the caller
            // must neither modify the range's PTEs nor call end.
            EndCore(tracked: true, start, last);
            return false;
        }
        return true;
    }

    /// <summary>Calls every intersecting interval in tree order; false when a non-blockable one refused.</summary>
    private static bool RunCallbacks(IntervalNode first, in NotifierRange range, ulong last, ulong curSeq)
    {
        ulong start = range.Start;
        for (IntervalNode? node = first; node is not null; node = IntervalTree.Next(node, start, last))
        {
            if (Invoke(node.Notifier!, in range, curSeq)) continue;
            if (range.Blockable)
                throw new KernelBugException("HMM-R08", $"interval notifier [0x{node.Start:x}, 0x{node.Last:x}] returned false for blockable {range}; only a non-blockable invalidation may be refused");
            return false;
        }
        return true;
    }

    /// <summary>One ops->invalidate call, checked for locks leaked by the callback.</summary>
    private static bool Invoke(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
    {
        SchedulePoints.Reach(SchedulePointKind.Notifier, notifier);
        HeldLockMark mark = LockValidator.Mark();
        bool result;
        t_callbackDepth++;
        try
        {
            result = notifier.Ops.Invalidate(notifier, in range, curSeq);
        }
        finally
        {
            t_callbackDepth--;
        }
        LockValidator.CheckReleasedSince(mark, "mmu_interval_notifier_ops.invalidate");
        return result;
    }

    /// <summary>
    /// mn_itree_inv_end plus the range-lock bookkeeping. When <paramref name="tracked"/>, first
    /// unlinks an in-progress node recorded for [<paramref name="start"/>, <paramref name="last"/>]
    /// (nodes of equal ranges are interchangeable: none belongs to a thread), throwing NTF-R01
    /// when there is none. Then active--, and on the last end of an odd wave: apply deferred
    /// work, make seq even, wake everyone.
    /// </summary>
    private void EndCore(bool tracked, ulong start, ulong last)
    {
        bool wake = false;
        _lock.Lock();
        try
        {
            IntervalNode? inflight = null;
            if (tracked)
            {
                inflight = _activeInvalidateRanges == 0 ? null : FindInvalidation(start, last);
                if (inflight is null)
                    throw new KernelBugException("NTF-R01", $"mm {Mm.Id}: invalidate_range_end [0x{start:x}, 0x{last:x}] without a matching successful invalidate_range_start");
            }
            if (_activeInvalidateRanges <= 0)
                throw new KernelBugException("NTF-R01", $"mm {Mm.Id}: active_invalidate_ranges underflow");
            if (inflight is not null)
            {
                _guards.Remove(inflight);
                ReturnInvalidationNode(inflight);
                if (BumpGuardGenerationLocked()) wake = true;
            }
            if (--_activeInvalidateRanges == 0 && (_invalidateSeq & 1) != 0)
            {
                ApplyDeferred();
                // Publish the even seq last: whoever sees it also sees the tree updated.
                Volatile.Write(ref _invalidateSeq, _invalidateSeq + 1);
                wake = true;
            }
        }
        finally
        {
            _lock.Unlock();
        }
        if (wake) _waitQueue.WakeUpAll();
    }

    private void AddDeferred(IntervalNode node)
    {
        node.OnDeferredList = true;
        node.DeferredPrev = null;
        node.DeferredNext = _deferredHead;
        if (_deferredHead is not null) _deferredHead.DeferredPrev = node;
        _deferredHead = node;
    }

    private void RemoveDeferred(IntervalNode node)
    {
        if (!node.OnDeferredList) throw new InvalidOperationException("node not on the deferred list");
        if (node.DeferredPrev is not null) node.DeferredPrev.DeferredNext = node.DeferredNext;
        else _deferredHead = node.DeferredNext;
        if (node.DeferredNext is not null) node.DeferredNext.DeferredPrev = node.DeferredPrev;
        node.DeferredNext = null;
        node.DeferredPrev = null;
        node.OnDeferredList = false;
    }

    private void ApplyDeferred()
    {
        IntervalNode? node = _deferredHead;
        _deferredHead = null;
        while (node is not null)
        {
            IntervalNode? next = node.DeferredNext;
            node.DeferredNext = null;
            node.DeferredPrev = null;
            node.OnDeferredList = false;
            if (node.InTree) _intervals.Remove(node);
            else _intervals.Insert(node);
            node = next;
        }
    }

    // ---------------------------------------------------------------- range locks and monitors

    /// <summary>Links a range lock once no overlapping invalidation is in progress; may sleep.</summary>
    internal void AcquireRangeLock(IntervalNode node)
    {
        InvalidateRangeStartMap.Acquire();
        InvalidateRangeStartMap.Release();
        _lock.Lock();
        try
        {
            while (OverlapsKind(node.Start, node.Last, IntervalNodeKind.Invalidation))
                WaitGuardChangeLocked();
            _guards.Insert(node);
        }
        finally
        {
            _lock.Unlock();
        }
    }

    /// <summary>
    /// Marks a monitor valid (linking it first when <paramref name="link"/>) once no overlapping
    /// invalidation is in progress; may sleep.
    /// </summary>
    internal void ValidateMonitor(IntervalNode node, bool link)
    {
        InvalidateRangeStartMap.Acquire();
        InvalidateRangeStartMap.Release();
        _lock.Lock();
        try
        {
            while (OverlapsKind(node.Start, node.Last, IntervalNodeKind.Invalidation))
                WaitGuardChangeLocked();
            if (link) _guards.Insert(node);
            Volatile.Write(ref node.Valid, 1);
        }
        finally
        {
            _lock.Unlock();
        }
    }

    /// <summary>Unlinks a range lock or monitor, waking invalidations that waited for it.</summary>
    internal void UnlinkGuard(IntervalNode node)
    {
        bool wake;
        _lock.Lock();
        try
        {
            _guards.Remove(node);
            wake = BumpGuardGenerationLocked();
        }
        finally
        {
            _lock.Unlock();
        }
        if (wake) _waitQueue.WakeUpAll();
    }

    private bool OverlapsKind(ulong start, ulong last, IntervalNodeKind kind)
    {
        for (IntervalNode? n = _guards.First(start, last); n is not null; n = IntervalTree.Next(n, start, last))
            if (n.Kind == kind) return true;
        return false;
    }

    private void InvalidateMonitors(ulong start, ulong last)
    {
        for (IntervalNode? n = _guards.First(start, last); n is not null; n = IntervalTree.Next(n, start, last))
            if (n.Kind == IntervalNodeKind.Monitor) Volatile.Write(ref n.Valid, 0);
    }

    private IntervalNode? FindInvalidation(ulong start, ulong last)
    {
        for (IntervalNode? n = _guards.First(start, last); n is not null; n = IntervalTree.Next(n, start, last))
            if (n.Kind == IntervalNodeKind.Invalidation && n.Start == start && n.Last == last) return n;
        return null;
    }

    /// <summary>Called with the spinlock held; drops it, sleeps until a guard changes, retakes it.</summary>
    private void WaitGuardChangeLocked()
    {
        ulong generation = _guardGeneration;
        _guardWaiters++;
        _lock.Unlock();
        try
        {
            _waitQueue.WaitEvent((this, generation), static s => Volatile.Read(ref s.Item1._guardGeneration) != s.Item2);
        }
        finally
        {
            _lock.Lock();
            _guardWaiters--;
        }
    }

    /// <summary>Records that a guard went away; returns whether someone waits for that.</summary>
    private bool BumpGuardGenerationLocked()
    {
        Volatile.Write(ref _guardGeneration, _guardGeneration + 1);
        return _guardWaiters > 0;
    }

    /// <summary>A pooled node for an invalidation in progress: allocation only while warming up.</summary>
    private IntervalNode RentInvalidationNode(ulong start, ulong last)
    {
        IntervalNode? node = _spareInvalidationNodes;
        if (node is null) node = new IntervalNode(IntervalNodeKind.Invalidation);
        else _spareInvalidationNodes = node.DeferredNext;
        node.DeferredNext = null;
        node.Start = start;
        node.Last = last;
        return node;
    }

    private void ReturnInvalidationNode(IntervalNode node)
    {
        node.DeferredNext = _spareInvalidationNodes;
        _spareInvalidationNodes = node;
    }

    /// <inheritdoc/>
    public void CheckIdle()
    {
        CheckInvariants();
        if (Volatile.Read(ref _activeInvalidateRanges) != 0)
            throw new KernelBugException("NTF-R01", $"mm {Mm.Id}: {_activeInvalidateRanges} invalidations still active (a start without its end)");
    }

    /// <summary>Throws when the idle-state invariants do not hold (seq even, nothing deferred, trees sound).</summary>
    internal void CheckInvariants()
    {
        _lock.Lock();
        try
        {
            if (_activeInvalidateRanges < 0)
                throw new KernelBugException("NTF-R01", $"mm {Mm.Id}: active_invalidate_ranges = {_activeInvalidateRanges}");
            if (_activeInvalidateRanges == 0)
            {
                if ((_invalidateSeq & 1) != 0)
                    throw new KernelBugException("NTF-R01", $"mm {Mm.Id}: invalidate_seq {_invalidateSeq} odd while no invalidation is active");
                if (_deferredHead is not null)
                    throw new KernelBugException("NTF-R01", $"mm {Mm.Id}: deferred interval work left while idle");
            }
            _intervals.Validate();
            _guards.Validate();
            CheckSubscribersLocked();
        }
        finally
        {
            _lock.Unlock();
        }
    }
}
