namespace Hmm.Runtime.Mm;

public sealed partial class Machine
{
    /// <summary>
    /// Simulates memory pressure reaching the MADV_FREE pages (shrink_folio_list on lazy-free
    /// anonymous folios): every lazy-free page not written since its MADV_FREE is dropped, so it
    /// reads back as zeros. Returns the number of pages freed.
    /// </summary>
    public int Reclaim()
    {
        int freed = 0;
        foreach (var p in Processes) freed += p.Mm.ReclaimLazyFree();
        return freed;
    }
}
