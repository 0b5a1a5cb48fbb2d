using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Devices;

/// <summary>A run of faults on consecutive pages of one address space, serviced by one range fault.</summary>
/// <param name="Instance">The address space (instance pointer) of the run.</param>
/// <param name="Start">First page address.</param>
/// <param name="End">End address (exclusive).</param>
/// <param name="Write">Whether any fault in the run needs write permission.</param>
/// <param name="Atomic">Whether any fault in the run is atomic.</param>
/// <param name="PrefetchOnly">Whether every fault in the run is a prefetch (snapshot, no fault-in).</param>
public readonly record struct FaultRange(int Instance, ulong Start, ulong End, bool Write, bool Atomic, bool PrefetchOnly);

/// <summary>
/// The batch preprocessing every fault-buffer driver does (drivers.md A.3 step 1 and A.4, UVM
/// C.1): sort the drained entries by (instance, address, most intrusive access first), drop
/// duplicates of the same page (keeping the most intrusive access), and coalesce consecutive
/// pages into ranges so each range is serviced by one hmm_range_fault. In place, allocation-free.
/// </summary>
public static class FaultBatch
{
    /// <summary>
    /// Sorts <paramref name="faults"/> and removes duplicate pages of the same instance in place;
    /// returns the number of unique faults now at the front (each carrying the most intrusive access of its page).
    /// </summary>
    public static int SortAndDeduplicate(Span<FaultEntry> faults)
    {
        if (faults.Length <= 1) return faults.Length;
        faults.Sort(default(ServiceOrder));
        int unique = 1;
        for (int i = 1; i < faults.Length; i++)
        {
            ref readonly var last = ref faults[unique - 1];
            if (faults[i].Instance == last.Instance && faults[i].Address == last.Address) continue;
            faults[unique++] = faults[i];
        }
        return unique;
    }

    /// <summary>nouveau_svm_fault_cmp: instance, then address, then the most intrusive access first.</summary>
    private readonly struct ServiceOrder : IComparer<FaultEntry>
    {
        public int Compare(FaultEntry a, FaultEntry b)
        {
            int c = a.Instance.CompareTo(b.Instance);
            if (c != 0) return c;
            c = a.Address.CompareTo(b.Address);
            return c != 0 ? c : b.Priority.CompareTo(a.Priority);
        }
    }

    /// <summary>
    /// Coalesces sorted, de-duplicated faults into ranges of consecutive pages (at most
    /// <paramref name="maxPages"/> pages each) of one instance. Returns the number of ranges written.
    /// </summary>
    public static int Coalesce(ReadOnlySpan<FaultEntry> unique, Span<FaultRange> ranges, int maxPages = Page.PmdPages)
    {
        int n = 0;
        int i = 0;
        while (i < unique.Length)
        {
            var first = unique[i];
            ulong end = first.Address + Page.Size;
            bool write = first.Access == DeviceAccess.Write, atomic = first.Access == DeviceAccess.Atomic, prefetchOnly = first.Access == DeviceAccess.Prefetch;
            int j = i + 1;
            while (j < unique.Length && unique[j].Instance == first.Instance && unique[j].Address == end
                   && (int)((end - first.Address) >> Page.Shift) < maxPages)
            {
                write |= unique[j].Access == DeviceAccess.Write;
                atomic |= unique[j].Access == DeviceAccess.Atomic;
                prefetchOnly &= unique[j].Access == DeviceAccess.Prefetch;
                end += Page.Size;
                j++;
            }
            if (n == ranges.Length) throw new ArgumentException("ranges is too small for the batch", nameof(ranges));
            ranges[n++] = new FaultRange(first.Instance, first.Address, end, write, atomic, prefetchOnly);
            i = j;
        }
        return n;
    }
}
