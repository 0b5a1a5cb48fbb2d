using System.Runtime.InteropServices;

namespace Hmm.Runtime.Mm;

/// <summary>
/// Simulates the CPU TLBs of one mm and their shootdown (<c>flush_tlb_range</c>, the IPIs of
/// <c>flush_tlb_mm_range</c>): once a flush returns, no CPU still accesses memory through a
/// translation made before the page-table change it follows.
/// </summary>
/// <remarks>
/// <para>A simulated CPU access walks the page table and then touches the page's bytes. Those
/// two steps are not atomic for the threads of the simulator, whereas on hardware the store or
/// load completes before the CPU takes the flush IPI. Without this, a migration could turn the
/// PTE into a migration entry and copy the page while a CPU thread that translated just before
/// still stores into the old page — the store is lost (issue 8, failure 1) — or a load could read
/// the old page after it was freed and reused (reading 0). The kernel relies on the flush: after
/// migrate_vma_collect's <c>flush_tlb_range</c> "pages are locked and unmapped, and thus they have
/// stable content and can safely be copied".</para>
/// <para>Each access is a read-side section (<see cref="Enter"/>/<see cref="Exit"/>) covering the
/// walk and the access only, never a fault (faults may sleep). A flush flips the epoch and waits
/// until the sections of the old epoch drained: those are short and never block, and new ones
/// count in the other slot and see the new PTEs, so the wait is bounded (the SRCU scheme). Flushes
/// of one mm are serialised by a spinlock (the waiting is a spin, as a shootdown's is).</para>
/// </remarks>
internal sealed class TlbShootdown
{
    // Two counters on their own cache lines (readers of different epochs do not share one).
    [StructLayout(LayoutKind.Explicit, Size = 192)]
    private struct Slots
    {
        [FieldOffset(64)] public int Even;
        [FieldOffset(128)] public int Odd;
    }

    private Slots _slots;
    private int _epoch;
    private readonly Locking.SpinLock _flushLock = new("tlb_flush_lock");

    /// <summary>Begins one CPU access (page-table walk + load/store); returns the token for <see cref="Exit"/>.</summary>
    public int Enter()
    {
        int e = Volatile.Read(ref _epoch) & 1;
        // A reader may stop here, between reading the epoch and being counted, for as long as the
        // host preempts it: across a whole flush, which then cannot see it (see Flush).
        Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.TlbEpochRead, this, 0);
        // A full fence: the walk that follows cannot be ordered before the count is visible, so
        // a flusher either sees this access counted or this access sees the flusher's new PTE.
        Interlocked.Increment(ref e == 0 ? ref _slots.Even : ref _slots.Odd);
        return e;
    }

    /// <summary>Ends the access begun with <paramref name="token"/>; its load or store is complete.</summary>
    public void Exit(int token) => Interlocked.Decrement(ref token == 0 ? ref _slots.Even : ref _slots.Odd);

    /// <summary>
    /// flush_tlb_range: returns once every CPU access that may have translated through an entry
    /// changed before this call has completed. Never sleeps; callable under the PTL.
    /// </summary>
    /// <remarks>
    /// Both slots are drained, the other one first (as synchronize_srcu checks idx ^ 1 before it
    /// flips): a reader that read the epoch before the previous flip but was counted only after
    /// that flush had looked is counted in the slot that flush already drained, and it may have
    /// walked the page table before this caller changed it. Waiting only for the slot being
    /// flipped away let such a reader keep using the old page after this flush returned — a store
    /// lost in a page the migration had already copied, or a load from a page already freed and
    /// reused (issue 8, failure 1 seen again under load in stress Everything(2)). New readers
    /// never enter the slot being drained, so each wait is bounded by accesses already begun.
    /// </remarks>
    public void Flush()
    {
        _flushLock.Lock();
        try
        {
            // A full fence first: the caller's PTE writes are visible before any count is read.
            int current = Interlocked.CompareExchange(ref _epoch, 0, 0) & 1;
            Drain(current ^ 1);
            Interlocked.Increment(ref _epoch);
            Drain(current);
        }
        finally { _flushLock.Unlock(); }
    }

    /// <summary>Waits until no access counted in slot <paramref name="slot"/> is in progress.</summary>
    private void Drain(int slot)
    {
        ref int count = ref slot == 0 ? ref _slots.Even : ref _slots.Odd;
        if (Volatile.Read(ref count) == 0) return;
        Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.TlbFlushWaiting, this, 0);
        var spin = new SpinWait();
        while (Volatile.Read(ref count) != 0) spin.SpinOnce(sleep1Threshold: -1);
    }
}
