using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

/// <summary>One page-table entry found by a reverse-map walk.</summary>
/// <remarks><paramref name="Tag"/>: the index of the query in a <see cref="Rmap.CollectBatch"/> call (0 otherwise).</remarks>
internal readonly record struct RmapHit(AddressSpace Mm, Vma Vma, ulong Address, bool Huge, int Tag = 0);

/// <summary>One query of <see cref="Rmap.CollectBatch"/>: pages [FirstPfn, +Pages).</summary>
internal readonly record struct RmapQuery(ulong FirstPfn, int Pages);

/// <summary>
/// Simulates the anonymous reverse map (rmap_walk_anon over the anon_vma): finds every
/// page-table entry, in any address space, that references a folio — present mappings,
/// device-private and device-exclusive entries, and migration entries. Anonymous pages record
/// their anon_vma lineage id and linear index, so the candidate address in each VMA of the
/// lineage is computed and the entry there checked, as the kernel does.
/// </summary>
internal static class Rmap
{
    [ThreadStatic] private static List<RmapHit>? t_hits;
    [ThreadStatic] private static Vma[]? t_vmas;

    /// <summary>Scratch list for the calling thread (no allocation after warm-up).</summary>
    public static List<RmapHit> Scratch()
    {
        var hits = t_hits ??= new List<RmapHit>(8);
        hits.Clear();
        return hits;
    }

    /// <summary>
    /// Adds to <paramref name="hits"/> every entry whose kind is in <paramref name="kinds"/> and that
    /// references pages [<paramref name="firstPfn"/>, +<paramref name="pages"/>): a PTE mapping
    /// one of them, or (when the query covers a whole 2 MiB folio) a PMD leaf mapping it.
    /// Takes each visited mm's mmap lock for read unless the caller holds it.
    /// </summary>
    public static void Collect(Machine machine, ulong firstPfn, int pages, PteKindSet kinds, List<RmapHit> hits)
        => CollectBatch(machine, [new RmapQuery(firstPfn, pages)], kinds, hits);

    /// <summary>
    /// <see cref="Collect"/> for many queries at once (each hit tagged with its query's index):
    /// consecutive queries whose pages share an anon_vma share one lookup and VMA snapshot, and
    /// each VMA's mm is locked once for all of them instead of once per page. Hits come grouped
    /// by VMA, then by query.
    /// </summary>
    public static void CollectBatch(Machine machine, ReadOnlySpan<RmapQuery> queries, PteKindSet kinds, List<RmapHit> hits)
    {
        var frames = machine.Frames;
        for (int q = 0; q < queries.Length;)
        {
            int owner = frames.Owner(queries[q].FirstPfn);
            int end = q + 1;
            while (end < queries.Length && frames.Owner(queries[end].FirstPfn) == owner) end++;
            if (machine.OwnerOf(owner) is AnonVma anon) CollectLineage(frames, anon, queries, q, end, kinds, hits);
            q = end;
        }
    }

    private static void CollectLineage(PageFrames frames, AnonVma anon, ReadOnlySpan<RmapQuery> queries, int from, int to, PteKindSet kinds, List<RmapHit> hits)
    {
        // Snapshot the lineage's VMAs into this thread's reusable buffer (no allocation per
        // call once it is large enough). The buffer is taken out of the thread-static slot while
        // in use, so a nested walk on the same thread gets its own.
        Vma[] vmas = t_vmas ?? new Vma[4];
        t_vmas = null;
        int count;
        anon.Lock.Lock();
        try
        {
            count = anon.Vmas.Count;
            if (vmas.Length < count) vmas = new Vma[Math.Max(count, vmas.Length * 2)];
            anon.Vmas.CopyTo(vmas);
        }
        finally { anon.Lock.Unlock(); }
        try
        {
            foreach (var vma in vmas.AsSpan(0, count))
            {
                var mm = vma.Mm;
                bool taken = mm.LockForRmap();
                try
                {
                    if (mm.IsTornDown) continue;
                    for (int q = from; q < to; q++)
                    {
                        var query = queries[q];
                        Probe(mm, vma, query.FirstPfn, query.Pages, frames.Index(query.FirstPfn), kinds, hits, q);
                    }
                }
                finally { mm.UnlockForRmap(taken); }
            }
        }
        finally
        {
            Array.Clear(vmas, 0, count);   // keep no VMA alive from the buffer
            t_vmas = vmas;
        }
    }

    private static void Probe(AddressSpace mm, Vma vma, ulong firstPfn, int pages, ulong index, PteKindSet kinds, List<RmapHit> hits, int tag)
    {
        for (int i = 0; i < pages; i++)
        {
            if (!vma.TryAddressOf(index + (ulong)i, out ulong address)) continue;
            var entry = mm.ReadEntry(address, out bool huge);
            if (entry.IsNone || !kinds.Contains(entry.Kind)) continue;
            if (huge)
            {
                if (pages == Page.PmdPages && entry.Pfn == firstPfn && (address & (Page.PmdSize - 1)) == 0)
                {
                    hits.Add(new RmapHit(mm, vma, address, true, tag));
                    break;
                }
                continue;
            }
            if (entry.Pfn == firstPfn + (ulong)i) hits.Add(new RmapHit(mm, vma, address, false, tag));
        }
    }
}

/// <summary>A small set of <see cref="PteKind"/> values.</summary>
internal readonly record struct PteKindSet(uint Bits)
{
    public static PteKindSet Of(PteKind a) => new(1u << (int)a);
    public static PteKindSet Of(PteKind a, PteKind b) => new((1u << (int)a) | (1u << (int)b));
    public static PteKindSet Of(PteKind a, PteKind b, PteKind c) => new((1u << (int)a) | (1u << (int)b) | (1u << (int)c));
    public bool Contains(PteKind k) => (Bits & (1u << (int)k)) != 0;
}
