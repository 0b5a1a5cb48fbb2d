using Hmm.Runtime.Memory;

namespace Hmm.Samples.Nouveau;

/// <summary>
/// UVM's tree-based density prefetcher (uvm_perf_prefetch.c, drivers.md C.4) over one 2 MiB VA
/// block of 512 pages. The pages already resident at the destination OR faulted now form the
/// leaves of a complete binary tree; optionally every 64 KiB big page holding a faulted page and
/// no thrashing page is filled first ("grow fault granularity"). For each faulted, non-thrashing
/// page the LARGEST ancestor subtree whose occupancy satisfies
/// <c>occupied · 100 &gt; size · threshold</c> (51 % by default) becomes a prefetch region; the
/// union of regions, minus the faulted pages, minus thrashing pages, clipped to the allowed pages
/// (the VMA / policy range), is the prefetch mask — here also minus the pages already resident at
/// the destination, so the mask is exactly the extra pages to migrate. Pure and allocation-free.
/// </summary>
public static class DensityPrefetcher
{
    /// <summary>Pages per 64 KiB big page (UVM_PAGE_SIZE_64K / PAGE_SIZE).</summary>
    public const int BigPagePages = 16;

    /// <summary>Levels of the tree above the leaves: subtrees of 2, 4, … 512 pages.</summary>
    public const int TreeLevels = Page.PmdOrder;

    /// <summary>
    /// The prefetch mask for one block.
    /// </summary>
    /// <param name="resident">Pages already resident at the destination.</param>
    /// <param name="faulted">Pages faulted now (they migrate anyway; never part of the result).</param>
    /// <param name="thrashing">Pages the thrashing module reports (never prefetched, never grown).</param>
    /// <param name="allowed">Pages the prefetch may touch (inside the VMA and the policy range).</param>
    /// <param name="thresholdPercent"><c>uvm_perf_prefetch_threshold</c> (1–100).</param>
    /// <param name="growToBigPages">Fill faulted 64 KiB big pages before the tree walk.</param>
    public static BlockMask Compute(in BlockMask resident, in BlockMask faulted, in BlockMask thrashing, in BlockMask allowed,
                                    int thresholdPercent, bool growToBigPages)
    {
        if (thresholdPercent is < 1 or > 100) throw new ArgumentOutOfRangeException(nameof(thresholdPercent));
        var tree = resident;
        tree.Or(faulted);
        if (growToBigPages)
        {
            for (int b = 0; b < Page.PmdPages; b += BigPagePages)
                if (!faulted.IsEmpty(b, b + BigPagePages) && thrashing.IsEmpty(b, b + BigPagePages))
                    tree.Fill(b, b + BigPagePages);
        }

        var prefetch = default(BlockMask);
        var migrate = faulted;
        migrate.AndNot(thrashing);
        for (int p = 0; p < Page.PmdPages; p++)
        {
            if (!migrate.Test(p)) continue;
            // Walk leaf → root; the last (largest) subtree over the threshold wins. The leaf itself
            // always qualifies (1·100 > 1·threshold for threshold < 100).
            int first = p, end = p + 1;
            for (int level = 0; level <= TreeLevels; level++)
            {
                int size = 1 << level;
                int start = p & ~(size - 1);
                if (tree.Count(start, start + size) * 100 > size * thresholdPercent)
                {
                    first = start;
                    end = start + size;
                }
            }
            prefetch.Fill(first, end);
            if (end == Page.PmdPages && first == 0) break; // the whole block: nothing more to add
        }
        prefetch.AndNot(faulted);
        prefetch.AndNot(thrashing);
        // Already at the destination: migrating them is a no-op, so they are not "prefetched".
        prefetch.AndNot(resident);
        prefetch.And(allowed);
        return prefetch;
    }

    /// <summary>The first-touch rule of C.4: nothing resident anywhere and the destination is preferred → the whole allowed block.</summary>
    public static BlockMask FirstTouch(in BlockMask faulted, in BlockMask allowed)
    {
        var all = allowed;
        all.AndNot(faulted);
        return all;
    }
}
