namespace Hmm.Runtime.Mm;

/// <summary>
/// Simulates the mm's VMA tree (the maple tree) as a sorted array of non-overlapping VMAs with
/// binary-search lookup; a process has few VMAs, so insertion cost is irrelevant next to lookup.
/// Changed only under the mmap lock held for write; read under it held for read.
/// </summary>
internal sealed class VmaList
{
    private readonly List<Vma> _vmas = new();

    public int Count => _vmas.Count;

    public Vma this[int index] => _vmas[index];

    /// <summary>find_vma: index of the first VMA with End &gt; <paramref name="address"/>, or Count.</summary>
    public int IndexAfter(ulong address)
    {
        int lo = 0, hi = _vmas.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_vmas[mid].End <= address) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// <summary>vma_lookup: the VMA containing <paramref name="address"/>, or null.</summary>
    public Vma? Lookup(ulong address)
    {
        int i = IndexAfter(address);
        return i < _vmas.Count && _vmas[i].Start <= address ? _vmas[i] : null;
    }

    /// <summary>Whether any VMA intersects [start, end).</summary>
    public bool Intersects(ulong start, ulong end)
    {
        int i = IndexAfter(start);
        return i < _vmas.Count && _vmas[i].Start < end;
    }

    /// <summary>Whether [start, end) is covered by VMAs with no hole.</summary>
    public bool Covers(ulong start, ulong end)
    {
        ulong at = start;
        for (int i = IndexAfter(start); i < _vmas.Count && at < end; i++)
        {
            if (_vmas[i].Start > at) return false;
            at = _vmas[i].End;
        }
        return at >= end;
    }

    public void Insert(Vma vma)
    {
        int i = IndexAfter(vma.Start);
        if (i < _vmas.Count && _vmas[i].Start < vma.End)
            throw new KernelBugException("MM-R02", $"VMA {vma} overlaps {_vmas[i]}");
        _vmas.Insert(i, vma);
    }

    public void Remove(Vma vma)
    {
        int i = IndexAfter(vma.Start);
        if (i >= _vmas.Count || !ReferenceEquals(_vmas[i], vma))
            throw new KernelBugException("MM-R02", $"VMA {vma} is not in the tree");
        _vmas.RemoveAt(i);
    }

    /// <summary>The VMAs intersecting [start, end), in address order, copied into a list.</summary>
    public List<Vma> Overlapping(ulong start, ulong end)
    {
        var list = new List<Vma>();
        for (int i = IndexAfter(start); i < _vmas.Count && _vmas[i].Start < end; i++) list.Add(_vmas[i]);
        return list;
    }

    /// <summary>Top-down search for a free gap of <paramref name="length"/> aligned to <paramref name="align"/> in [low, high).</summary>
    public ulong FindGapTopDown(ulong length, ulong align, ulong low, ulong high)
    {
        ulong ceiling = high;
        for (int i = _vmas.Count; i >= 0; i--)
        {
            ulong floor = i > 0 ? Math.Max(_vmas[i - 1].End, low) : low;
            ulong top = i < _vmas.Count ? Math.Min(_vmas[i].Start, ceiling) : ceiling;
            if (top > floor && top - floor >= length)
            {
                ulong candidate = (top - length) & ~(align - 1);
                if (candidate >= floor) return candidate;
            }
            if (i > 0 && _vmas[i - 1].End <= low) break;
        }
        return 0;
    }

    public List<Vma> ToList() => new(_vmas);
}
