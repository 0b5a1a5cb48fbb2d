using System.Runtime.CompilerServices;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

/// <summary>What <see cref="Machine.FolioReferenced"/> found.</summary>
/// <param name="ReferencedMappings">Mappings found young (by the CPU's accessed bit or by a secondary MMU's clear_flush_young), each counted once.</param>
/// <param name="Locked">A VM_LOCKED mapping was met (reclaim keeps the folio, as folio_check_references activates it).</param>
public readonly record struct FolioReferences(int ReferencedMappings, bool Locked);

public sealed partial class Machine
{
    /// <summary>
    /// folio_referenced (mm/rmap.c) for an anonymous folio: an rmap walk, VMA by VMA as
    /// rmap_walk_anon does, that tests and clears the accessed bit of every present entry mapping
    /// the folio (a PTE per page, or the PMD leaf of a THP) and asks the whole-mm notifiers whether
    /// a secondary MMU used the same range (ptep_clear_flush_young_notify /
    /// pmdp_clear_flush_young_notify: the CPU bit and the notifiers' answer are ORed, one count per
    /// mapping). Non-present entries (device-exclusive, migration) are old from the CPU's point of
    /// view and the notifiers are not asked about them, as folio_referenced_one does since
    /// device-exclusive entries reach it. Device-private folios are never on the LRU, so reclaim
    /// never asks. A VM_LOCKED mapping ends the walk with <see cref="FolioReferences.Locked"/>.
    /// </summary>
    /// <remarks>
    /// Locking as the kernel: the lineage's anon_vma rwsem for read around the walk, each mapping's
    /// page-table lock around the test-and-clear and the notifier query (whose callbacks must not
    /// sleep: KVM's takes its mmu_lock). No mmap lock is needed; the caller may hold one. The
    /// accessed bit is cleared atomically because the simulated MMU sets it (and the dirty bit)
    /// by compare-and-swap without the page-table lock. x86 does not flush the TLB for a cleared
    /// accessed bit, so neither does this. File folios (no i_mmap walk in the simulator) report no
    /// reference.
    /// </remarks>
    public FolioReferences FolioReferenced(ulong pfn)
    {
        ulong head = Frames.FolioHead(pfn);
        return PagesReferenced(head, 1 << Frames.Order(head));
    }

    /// <summary>
    /// <see cref="FolioReferenced"/> for pages [<paramref name="firstPfn"/>, +<paramref name="pages"/>)
    /// of one anonymous folio (the whole folio, or one page of a PTE-mapped large folio).
    /// </summary>
    internal FolioReferences PagesReferenced(ulong firstPfn, int pages)
    {
        ulong head = firstPfn;
        var anon = Rmap.LockAnon(this, head, out bool taken);
        if (anon == null) return default;
        int referenced = 0;
        try
        {
            var hits = Rmap.Scratch();
            var vmas = anon.Vmas;
            for (int v = 0; v < vmas.Count; v++)
            {
                hits.Clear();
                Rmap.CollectVma(this, anon, vmas[v], head, pages, PteKindSet.Of(PteKind.Present, PteKind.DeviceExclusive), hits);
                for (int h = 0; h < hits.Count; h++)
                {
                    var hit = hits[h];
                    if ((hit.Vma.Flags & VmFlags.Locked) != 0) return new FolioReferences(referenced, Locked: true);
                    if (ClearFlushYoungNotify(hit, head, pages)) referenced++;
                }
            }
        }
        finally { anon.UnlockRead(taken); }
        return new FolioReferences(referenced, Locked: false);
    }

    /// <summary>ptep/pmdp_clear_flush_young_notify for one rmap hit, re-checked under its page-table lock.</summary>
    private static bool ClearFlushYoungNotify(RmapHit hit, ulong head, int pages)
    {
        var mm = hit.Mm;
        mm.PageTableLock.Lock();
        try
        {
            ref ulong slot = ref mm.SlotFor(hit.Address, hit.Huge);
            if (Unsafe.IsNullRef(ref slot)) return false;
            var e = new Pte(Volatile.Read(ref slot));
            // Gone, changed, or a non-present entry (device-exclusive): old for the CPU, and the
            // kernel does not ask the notifiers either.
            if (e.Kind != PteKind.Present || e.Pfn - head >= (ulong)pages) return false;
            bool young = (Interlocked.And(ref slot, ~Pte.YoungBit) & Pte.YoungBit) != 0;
            ulong size = hit.Huge ? Page.PmdSize : Page.Size;
            if (mm.NotifierHook is { } hook) young |= hook.ClearFlushYoung(hit.Address, hit.Address + size);
            return young;
        }
        finally { mm.PageTableLock.Unlock(); }
    }
}
