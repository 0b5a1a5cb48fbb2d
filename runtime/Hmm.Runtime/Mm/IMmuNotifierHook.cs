namespace Hmm.Runtime.Mm;

/// <summary>
/// What the mm core calls around every CPU page-table change (mmu_notifier_invalidate_range_start
/// / _end and mmu_notifier_release). The mm layer owns this interface so it does not depend on
/// the notifier layer above it; <c>Hmm.Runtime.Notifiers</c> implements it per address space
/// (the kernel's struct mmu_notifier_subscriptions) and installs it on the first registration.
/// </summary>
internal interface IMmuNotifierHook
{
    /// <summary>
    /// invalidate_range_start. For a blockable range it always returns true (and may wait, e.g.
    /// behind a driver's range lock). For a non-blockable range it returns false when a callback
    /// refused (the kernel's -EAGAIN): the caller must then leave the range's PTEs alone and must
    /// not call <see cref="InvalidateRangeEnd"/> (NTF-R01).
    /// </summary>
    bool InvalidateRangeStart(in NotifierRange range);

    /// <summary>invalidate_range_end: pairs with a successful start (NTF-R01).</summary>
    void InvalidateRangeEnd(in NotifierRange range);

    /// <summary>
    /// mmu_notifier_clear_flush_young: asks every whole-mm notifier whether a secondary MMU
    /// accessed [start, end) since the last query, clearing its accessed state; true if any did.
    /// Called by the rmap young walk (ptep_clear_flush_young_notify) under the page-table lock.
    /// </summary>
    bool ClearFlushYoung(ulong start, ulong end);

    /// <summary>mmu_notifier_release at exit: RELEASE over [0, ULONG_MAX) to every interval.</summary>
    void Release(AddressSpace mm);

    /// <summary>Machine.CheckInvariants: throws unless the subscriptions are idle and sound (seq even, nothing deferred).</summary>
    void CheckIdle();
}
