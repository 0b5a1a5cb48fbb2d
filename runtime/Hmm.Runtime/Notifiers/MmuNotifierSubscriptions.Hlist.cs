using Hmm.Runtime.Locking;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Scheduling;

namespace Hmm.Runtime.Notifiers;

/// <summary>
/// The whole-mm half of mm/mmu_notifier.c: <c>mm->notifier_subscriptions->list</c>, the hlist
/// of <see cref="MmuNotifier"/>s, and its dispatch (mn_hlist_invalidate_range_start / _end,
/// mn_hlist_release, the young-bit queries). The list changes under the subscription spinlock
/// and is walked inside the machine's <see cref="NotifierSrcu"/> read section, as the kernel's is.
/// </summary>
internal sealed partial class MmuNotifierSubscriptions
{
    private MmuNotifier? _subscribersHead;
    private int _subscriberCount;

    /// <summary>Whole-mm notifiers on the list (tests).</summary>
    internal int SubscriberCount => Volatile.Read(ref _subscriberCount);

    private bool HasSubscribers => Volatile.Read(ref _subscribersHead) is not null;

    /// <summary>hlist_add_head_rcu under the spinlock, with users = 1.</summary>
    internal void AddSubscriber(MmuNotifier notifier)
    {
        _lock.Lock();
        try
        {
            notifier.UsersCount = 1;
            notifier.Prev = null;
            notifier.Next = _subscribersHead;
            if (_subscribersHead is not null) _subscribersHead.Prev = notifier;
            notifier.Hashed = true;
            _subscriberCount++;
            // Publish last: a lock-free SRCU reader that sees the new head sees its links.
            Volatile.Write(ref _subscribersHead, notifier);
        }
        finally
        {
            _lock.Unlock();
        }
    }

    /// <summary>hlist_del_init_rcu under the spinlock; no-op when already unhashed.</summary>
    internal void RemoveSubscriber(MmuNotifier notifier)
    {
        _lock.Lock();
        try
        {
            UnlinkLocked(notifier);
        }
        finally
        {
            _lock.Unlock();
        }
    }

    private void UnlinkLocked(MmuNotifier notifier)
    {
        if (!notifier.Hashed) return;
        if (notifier.Prev is not null) notifier.Prev.Next = notifier.Next;
        else Volatile.Write(ref _subscribersHead, notifier.Next);
        if (notifier.Next is not null) notifier.Next.Prev = notifier.Prev;
        // Next stays: an SRCU reader standing on this node walks on to the rest of the list.
        notifier.Prev = null;
        notifier.Hashed = false;
        _subscriberCount--;
    }

    internal bool IsHashed(MmuNotifier notifier)
    {
        _lock.Lock();
        try { return notifier.Hashed; }
        finally { _lock.Unlock(); }
    }

    internal uint ReadUsers(MmuNotifier notifier)
    {
        _lock.Lock();
        try { return notifier.UsersCount; }
        finally { _lock.Unlock(); }
    }

    /// <summary>
    /// find_get_mmu_notifier: the first listed notifier with <paramref name="ops"/> gets one more
    /// user. <see cref="Errno.ENOENT"/> when there is none, <see cref="Errno.EOVERFLOW"/> when
    /// its count is saturated.
    /// </summary>
    internal Errno FindGet(MmuNotifierOps ops, out MmuNotifier? found)
    {
        found = null;
        _lock.Lock();
        try
        {
            for (MmuNotifier? n = _subscribersHead; n is not null; n = n.Next)
            {
                if (!ReferenceEquals(n.Ops, ops)) continue;
                if (n.UsersCount == uint.MaxValue) return Errno.EOVERFLOW;
                n.UsersCount++;
                found = n;
                return Errno.Ok;
            }
            return Errno.ENOENT;
        }
        finally
        {
            _lock.Unlock();
        }
    }

    /// <summary>The locked half of mmu_notifier_put: true when this dropped the last user (the notifier is then unlinked).</summary>
    internal bool PutUser(MmuNotifier notifier)
    {
        _lock.Lock();
        try
        {
            if (notifier.UsersCount == 0)
                throw new KernelBugException("NTF-R05", $"mmu_notifier_put without a matching get (users already 0): {notifier}");
            if (--notifier.UsersCount != 0) return false;
            UnlinkLocked(notifier);
            return true;
        }
        finally
        {
            _lock.Unlock();
        }
    }

    /// <summary>
    /// mn_hlist_invalidate_range_start: every listed notifier's start, in list order (newest
    /// first), inside the SRCU section and, for a non-blockable range, in non-blocking context.
    /// A failure (only -EAGAIN of a non-blockable range is allowed) does not stop the walk; then
    /// every notifier implementing end gets it at once (a start that can fail may not implement
    /// end, NTF-R03), and false is returned: the caller calls no end.
    /// </summary>
    private bool StartSubscribers(in NotifierRange range)
    {
        NotifierSrcu srcu = NotifierSrcu.Of(Mm.Machine);
        int token = srcu.ReadLock();
        try
        {
            Errno failed = Errno.Ok;
            for (MmuNotifier? n = Volatile.Read(ref _subscribersHead); n is not null; n = n.Next)
            {
                if (n.ReleaseStarted || (n.Ops.Implemented & MmuNotifierCallbacks.InvalidateRangeStart) == 0) continue;
                Errno r = InvokeStart(n, in range);
                if (r == Errno.Ok) continue;
                if (range.Blockable || r != Errno.EAGAIN)
                    throw new KernelBugException("HMM-R08", $"mmu_notifier {n} invalidate_range_start returned {r} for {range}; only a non-blockable range may be refused, and only with EAGAIN");
                if ((n.Ops.Implemented & MmuNotifierCallbacks.InvalidateRangeEnd) != 0)
                    throw new KernelBugException("NTF-R03", $"mmu_notifier {n} failed invalidate_range_start but implements invalidate_range_end: the core cannot tell it which starts failed, so a start that may fail must not have an end");
                failed = r;
            }
            if (failed == Errno.Ok) return true;
            // Those that succeeded expect their end; starts that can fail have none.
            EndSubscribersLocked(in range);
            return false;
        }
        finally
        {
            srcu.ReadUnlock(token);
        }
    }

    /// <summary>mn_hlist_invalidate_end, preceded by the secondary-TLB flush of the range.</summary>
    private void EndSubscribers(in NotifierRange range)
    {
        NotifierSrcu srcu = NotifierSrcu.Of(Mm.Machine);
        int token = srcu.ReadLock();
        try
        {
            // The kernel calls arch_invalidate_secondary_tlbs from the TLB flush of the change,
            // under the page-table lock; the simulator calls it once per range just before the
            // ends, when the entries are gone, in atomic context.
            for (MmuNotifier? n = Volatile.Read(ref _subscribersHead); n is not null; n = n.Next)
            {
                if (n.ReleaseStarted || (n.Ops.Implemented & MmuNotifierCallbacks.ArchInvalidateSecondaryTlbs) == 0) continue;
                using (LockValidator.EnterNonBlockable("mmu_notifier_ops.arch_invalidate_secondary_tlbs"))
                    InvokeVoid(n, in range, CallbackKind.SecondaryTlbs);
            }
            EndSubscribersLocked(in range);
        }
        finally
        {
            srcu.ReadUnlock(token);
        }
    }

    /// <summary>Every end, in list order; the caller is inside the SRCU section.</summary>
    private void EndSubscribersLocked(in NotifierRange range)
    {
        for (MmuNotifier? n = Volatile.Read(ref _subscribersHead); n is not null; n = n.Next)
        {
            if (n.ReleaseStarted || (n.Ops.Implemented & MmuNotifierCallbacks.InvalidateRangeEnd) == 0) continue;
            if (range.Blockable)
            {
                InvokeVoid(n, in range, CallbackKind.End);
            }
            else
            {
                using (LockValidator.EnterNonBlockable("mmu_notifier_ops.invalidate_range_end (non-blockable)"))
                    InvokeVoid(n, in range, CallbackKind.End);
            }
        }
    }

    /// <summary>
    /// mn_hlist_release at exit (before the pages are torn down): every listed notifier's
    /// release inside the SRCU section, then the whole list unlinked, then a grace period so a
    /// release running in a concurrent <see cref="MmuNotifier.Unregister"/> has returned before
    /// exit frees the pages. Notifiers stay allocated with their users: their owners still put
    /// or unregister them.
    /// </summary>
    private void ReleaseSubscribers()
    {
        if (!HasSubscribers) return;
        NotifierSrcu srcu = NotifierSrcu.Of(Mm.Machine);
        int token = srcu.ReadLock();
        try
        {
            for (MmuNotifier? n = Volatile.Read(ref _subscribersHead); n is not null; n = n.Next)
                InvokeRelease(n);
            _lock.Lock();
            try
            {
                while (_subscribersHead is { } head) UnlinkLocked(head);
            }
            finally
            {
                _lock.Unlock();
            }
        }
        finally
        {
            srcu.ReadUnlock(token);
        }
        srcu.Synchronize();
    }

    /// <summary>One ops->release, at most once per registration; no other callback starts once it began.</summary>
    internal void InvokeRelease(MmuNotifier notifier)
    {
        if (Interlocked.Exchange(ref notifier.ReleaseState, 1) != 0) return;
        if ((notifier.Ops.Implemented & MmuNotifierCallbacks.Release) == 0) return;
        SchedulePoints.Reach(SchedulePointKind.Notifier, notifier);
        HeldLockMark mark = LockValidator.Mark();
        t_callbackDepth++;
        try
        {
            notifier.Ops.Release(notifier, Mm);
        }
        finally
        {
            t_callbackDepth--;
        }
        LockValidator.CheckReleasedSince(mark, "mmu_notifier_ops.release");
    }

    private enum CallbackKind { End, SecondaryTlbs }

    private static Errno InvokeStart(MmuNotifier notifier, in NotifierRange range)
    {
        SchedulePoints.Reach(SchedulePointKind.Notifier, notifier);
        HeldLockMark mark = LockValidator.Mark();
        Errno result;
        t_callbackDepth++;
        try
        {
            if (range.Blockable)
            {
                result = notifier.Ops.InvalidateRangeStart(notifier, in range);
            }
            else
            {
                using (LockValidator.EnterNonBlockable("mmu_notifier_ops.invalidate_range_start (non-blockable)"))
                    result = notifier.Ops.InvalidateRangeStart(notifier, in range);
            }
        }
        finally
        {
            t_callbackDepth--;
        }
        LockValidator.CheckReleasedSince(mark, "mmu_notifier_ops.invalidate_range_start");
        return result;
    }

    private static void InvokeVoid(MmuNotifier notifier, in NotifierRange range, CallbackKind kind)
    {
        SchedulePoints.Reach(SchedulePointKind.Notifier, notifier);
        HeldLockMark mark = LockValidator.Mark();
        t_callbackDepth++;
        try
        {
            if (kind == CallbackKind.End) notifier.Ops.InvalidateRangeEnd(notifier, in range);
            else notifier.Ops.ArchInvalidateSecondaryTlbs(notifier, range.Mm, range.Start, range.End);
        }
        finally
        {
            t_callbackDepth--;
        }
        LockValidator.CheckReleasedSince(mark, kind == CallbackKind.End ? "mmu_notifier_ops.invalidate_range_end" : "mmu_notifier_ops.arch_invalidate_secondary_tlbs");
    }

    /// <summary>mmu_notifier_clear_flush_young: OR of every notifier's answer for [start, end).</summary>
    internal bool ClearFlushYoung(ulong start, ulong end) => QueryYoung(MmuNotifierCallbacks.ClearFlushYoung, start, end, stopAtFirst: false);

    bool IMmuNotifierHook.ClearFlushYoung(ulong start, ulong end) => ClearFlushYoung(start, end);

    /// <summary>mmu_notifier_clear_young: OR of every notifier's answer for [start, end).</summary>
    internal bool ClearYoung(ulong start, ulong end) => QueryYoung(MmuNotifierCallbacks.ClearYoung, start, end, stopAtFirst: false);

    /// <summary>mmu_notifier_test_young: true at the first notifier that saw <paramref name="address"/> accessed.</summary>
    internal bool TestYoung(ulong address) => QueryYoung(MmuNotifierCallbacks.TestYoung, address, address, stopAtFirst: true);

    private bool QueryYoung(MmuNotifierCallbacks which, ulong start, ulong end, bool stopAtFirst)
    {
        if (!HasSubscribers) return false;
        NotifierSrcu srcu = NotifierSrcu.Of(Mm.Machine);
        int token = srcu.ReadLock();
        bool young = false;
        try
        {
            for (MmuNotifier? n = Volatile.Read(ref _subscribersHead); n is not null; n = n.Next)
            {
                if (n.ReleaseStarted || (n.Ops.Implemented & which) == 0) continue;
                t_callbackDepth++;
                try
                {
                    young |= which switch
                    {
                        MmuNotifierCallbacks.ClearFlushYoung => n.Ops.ClearFlushYoung(n, Mm, start, end),
                        MmuNotifierCallbacks.ClearYoung => n.Ops.ClearYoung(n, Mm, start, end),
                        _ => n.Ops.TestYoung(n, Mm, start),
                    };
                }
                finally
                {
                    t_callbackDepth--;
                }
                if (young && stopAtFirst) break;
            }
        }
        finally
        {
            srcu.ReadUnlock(token);
        }
        return young;
    }

    /// <summary>The list's invariants: every listed notifier registered on this mm, hashed, with users ≥ 1, not freed; links consistent.</summary>
    private void CheckSubscribersLocked()
    {
        int count = 0;
        MmuNotifier? prev = null;
        for (MmuNotifier? n = _subscribersHead; n is not null; prev = n, n = n.Next)
        {
            if (++count > _subscriberCount)
                throw new KernelBugException("NTF-R05", $"mm {Mm.Id}: subscription list longer than its count {_subscriberCount} (a cycle or a lost unlink)");
            if (!n.Hashed || !ReferenceEquals(n.Prev, prev))
                throw new KernelBugException("NTF-R05", $"mm {Mm.Id}: {n} is on the subscription list with broken links");
            if (!n.IsLive)
                throw new KernelBugException("NTF-R05", $"mm {Mm.Id}: {n} is on the subscription list but was freed or queued for free");
            if (n.UsersCount == 0)
                throw new KernelBugException("NTF-R05", $"mm {Mm.Id}: {n} is on the subscription list with no users");
            if (!ReferenceEquals(n.Mm, Mm))
                throw new KernelBugException("NTF-R05", $"mm {Mm.Id}: {n} is listed on another mm than its own");
        }
        if (count != _subscriberCount)
            throw new KernelBugException("NTF-R05", $"mm {Mm.Id}: {count} notifiers listed, count says {_subscriberCount}");
    }
}
