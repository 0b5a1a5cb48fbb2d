using Hmm.Runtime.Memory;

namespace Hmm.Samples.Nouveau;

/// <summary>A virtual address range [Start, End).</summary>
/// <param name="Start">First byte.</param>
/// <param name="End">One past the last byte.</param>
public readonly record struct VaRange(ulong Start, ulong End)
{
    /// <summary>4 KiB pages it spans.</summary>
    public long Pages => (long)((End - Start) >> Page.Shift);
}

/// <summary>
/// nouveau's explicit migration (the SVM_BIND ioctl with MIGRATE → GPU_VRAM, drivers.md A.8) as
/// a plan: the page-aligned range is walked in 2 MiB units aligned to 2 MiB (the THP-era batch of
/// <c>HPAGE_PMD_NR</c> = 512 pages, which is also the device-memory chunk, A.7), so each unit
/// lands in one chunk and a THP-backed source moves as one folio. The driver migrates unit by
/// unit; errors are ignored (best effort, the ioctl's result is always 0).
/// </summary>
public static class BindPlan
{
    /// <summary>
    /// Splits [<paramref name="start"/>, <paramref name="end"/>) (rounded out to pages) at 2 MiB
    /// boundaries into <paramref name="units"/>; returns the count. Allocation-free.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="units"/> is too small (<see cref="UnitCount"/> says how many are needed).</exception>
    public static int Split(ulong start, ulong end, Span<VaRange> units)
    {
        start = Page.AlignDown(start);
        end = (end + Page.OffsetMask) & ~Page.OffsetMask;
        int n = 0;
        for (ulong a = start; a < end;)
        {
            ulong next = Math.Min((a & ~(Page.PmdSize - 1)) + Page.PmdSize, end);
            if (n == units.Length) throw new ArgumentException("too few units for the range", nameof(units));
            units[n++] = new VaRange(a, next);
            a = next;
        }
        return n;
    }

    /// <summary>How many 2 MiB units [<paramref name="start"/>, <paramref name="end"/>) splits into.</summary>
    public static int UnitCount(ulong start, ulong end)
    {
        start = Page.AlignDown(start);
        end = (end + Page.OffsetMask) & ~Page.OffsetMask;
        if (end <= start) return 0;
        return (int)(((end - 1) >> Page.PmdShift) - (start >> Page.PmdShift) + 1);
    }
}
