namespace Hmm.Runtime.Mm;

public sealed partial class Machine
{
    /// <summary>
    /// Simulates memory pressure reaching the MADV_FREE pages: two reclaim passes
    /// (<see cref="ReclaimPass"/>), as the inactive list is scanned again under sustained
    /// pressure, so every lazy-free page not written since its MADV_FREE and not referenced
    /// again between the passes is dropped (it reads back as zeros); a page referenced once was
    /// only spared by the first pass. A page some secondary MMU keeps reporting young
    /// (clear_flush_young) stays. Returns the number of pages freed.
    /// </summary>
    public int Reclaim()
    {
        int freed = ReclaimPass();
        return freed + ReclaimPass();
    }

    /// <summary>
    /// One shrink_folio_list pass over every lazy-free page (folio_check_references, then
    /// try_to_unmap_one): a page referenced since the last pass (accessed bit or a notifier's
    /// clear_flush_young) is marked PG_referenced and kept; an unreferenced clean one is freed;
    /// an unreferenced written one stops being lazy-free. Returns the pages freed.
    /// </summary>
    public int ReclaimPass()
    {
        int freed = 0;
        foreach (var p in Processes) freed += p.Mm.ReclaimLazyFree();
        return freed;
    }
}
