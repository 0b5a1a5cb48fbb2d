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
    public void Flush()
    {
        _flushLock.Lock();
        try
        {
            // The flip is a full fence: the caller's PTE writes are visible before the count is read.
            int old = Interlocked.Increment(ref _epoch) - 1 & 1;
            ref int drained = ref old == 0 ? ref _slots.Even : ref _slots.Odd;
            if (Volatile.Read(ref drained) == 0) return;
            Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.TlbFlushWaiting, this, 0);
            var spin = new SpinWait();
            while (Volatile.Read(ref drained) != 0) spin.SpinOnce(sleep1Threshold: -1);
        }
        finally { _flushLock.Unlock(); }
    }
}
