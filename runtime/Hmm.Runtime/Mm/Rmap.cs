using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

/// <summary>One page-table entry found by a reverse-map walk.</summary>
/// <remarks><paramref name="Tag"/>: the index of the query in a multi-query <see cref="Rmap.CollectVma(PageFrames, AnonVma, Vma, ReadOnlySpan{RmapQuery}, int, int, PteKindSet, List{RmapHit})"/> call (0 otherwise).</remarks>
internal readonly record struct RmapHit(AddressSpace Mm, Vma Vma, ulong Address, bool Huge, int Tag = 0);

/// <summary>One query of a multi-query rmap walk: pages [FirstPfn, +Pages).</summary>
internal readonly record struct RmapQuery(ulong FirstPfn, int Pages);

/// <summary>
/// Simulates the anonymous reverse map (rmap_walk_anon over the anon_vma): finds every
/// page-table entry, in any address space, that references a folio — present mappings,
/// device-private and device-exclusive entries, and migration entries. Anonymous pages record
/// their anon_vma lineage id and linear index, so the candidate address in each VMA of the
/// lineage is computed and the entry there checked, as the kernel does.
/// </summary>
/// <remarks>
/// Locking, as mm/rmap.c: the walker holds the lineage's <see cref="AnonVma.Rwsem"/> for read
/// (<see cref="LockAnon"/>) for the whole walk <i>and</i> for whatever it does to the hits, and
/// takes each hit's page-table lock to re-check and change the entry. It takes no mmap lock:
/// VMA link, unlink, split, merge, expansion and mremap's move hold the rwsem for write, and
/// every PTE change made under an mmap lock also holds the page-table lock. A hit found here
/// was read without the PTL and must be re-checked under it.
/// </remarks>
internal static class Rmap
{
    [ThreadStatic] private static List<RmapHit>? t_hits;

    /// <summary>Scratch list for the calling thread (no allocation after warm-up).</summary>
    public static List<RmapHit> Scratch()
    {
        var hits = t_hits ??= new List<RmapHit>(8);
        hits.Clear();
        return hits;
    }

    /// <summary>
    /// folio_lock_anon_vma_read: the lineage of the anonymous folio containing <paramref name="pfn"/>,
    /// with its rwsem held for read — <paramref name="taken"/> false when the calling thread already
    /// held it (rmap_walk_locked) — or null when the folio has no lineage (not anonymous, or its
    /// lineage is gone). The owner is re-read once the lock is held, as the kernel re-checks
    /// folio->mapping. Release with <see cref="AnonVma.UnlockRead"/>.
    /// </summary>
    public static AnonVma? LockAnon(Machine machine, ulong pfn, out bool taken)
    {
        var frames = machine.Frames;
        while (true)
        {
            taken = false;
            int owner = frames.Owner(pfn);
            if (machine.OwnerOf(owner) is not AnonVma anon) return null;
            taken = anon.LockRead();
            if (frames.Owner(pfn) == owner && ReferenceEquals(machine.OwnerOf(owner), anon)) return anon;
            anon.UnlockRead(taken);
        }
    }

    /// <summary>
    /// One step of rmap_walk_anon: adds the hits of VMA <paramref name="vma"/> of
    /// <paramref name="anon"/>'s lineage for queries [<paramref name="from"/>, <paramref name="to"/>).
    /// The caller holds the rwsem.
    /// </summary>
    /// <remarks>
    /// There is deliberately no "probe every VMA first" helper: the last user, the THP split,
    /// now goes VMA by VMA too (<see cref="Machine.TrySplitFolio"/>).
    /// A walk that changes entries must handle each VMA's hits (under that mm's page-table lock)
    /// before it looks at the next VMA (<c>for (v...) { CollectVma; change the hits }</c>), as
    /// rmap_walk_anon calls rmap_one per VMA: fork links the child's VMA after its parent's and
    /// copies entries under the parent's page-table lock, so a copy made after the walk looked
    /// at the (then empty) child but before it changed the parent would be missed by a walk that
    /// probed every VMA first — a migration entry left in the child for good, or a device
    /// mapping try_to_migrate never unmapped (found by the fork-eviction exploration scenario).
    /// </remarks>
    public static void CollectVma(PageFrames frames, AnonVma anon, Vma vma, ReadOnlySpan<RmapQuery> queries, int from, int to, PteKindSet kinds, List<RmapHit> hits)
    {
        if (!anon.Rwsem.IsLocked)
            throw new KernelBugException("MM-R04", $"rmap walk of anon_vma {anon.Id} without its rwsem");
        var mm = vma.Mm;
        if (mm.IsTornDown) return;
        for (int q = from; q < to; q++)
        {
            var query = queries[q];
            Probe(mm, vma, query.FirstPfn, query.Pages, frames.Index(query.FirstPfn), kinds, hits, q);
        }
    }

    /// <summary><see cref="CollectVma(PageFrames, AnonVma, Vma, ReadOnlySpan{RmapQuery}, int, int, PteKindSet, List{RmapHit})"/> for pages [<paramref name="firstPfn"/>, +<paramref name="pages"/>).</summary>
    public static void CollectVma(Machine machine, AnonVma anon, Vma vma, ulong firstPfn, int pages, PteKindSet kinds, List<RmapHit> hits)
        => CollectVma(machine.Frames, anon, vma, [new RmapQuery(firstPfn, pages)], 0, 1, kinds, hits);

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
