namespace Hmm.Samples.TestHmm;

/// <summary>
/// Simulates <c>dmirror->pt</c>: the device page table, an xarray indexed by <b>virtual page
/// number</b> whose entries are tagged page pointers (untagged = read-only,
/// <see cref="TagWrite"/> = read/write, <see cref="TagAtomic"/> = exclusive/atomic). Entries are
/// pfns of pages the device loads from and stores to; the table holds <b>no page references</b>
/// — it trusts the invalidate callback to erase them in time (reference E.1).
/// </summary>
/// <remarks>
/// A two-level radix (512-entry leaves keyed by vpn / 512) so that erasing a huge range (RELEASE
/// covers the whole address space) costs O(populated leaves). Not thread-safe: the owner guards
/// it with its update lock U (<c>dmirror->mutex</c>).
/// </remarks>
internal sealed class DevicePageTable
{
    /// <summary>No tag: a read-only mapping.</summary>
    public const int TagRead = 0;

    /// <summary>DPT_XA_TAG_ATOMIC (1): an exclusive mapping made by make_device_exclusive.</summary>
    public const int TagAtomic = 1;

    /// <summary>DPT_XA_TAG_WRITE (3): a read/write mapping.</summary>
    public const int TagWrite = 3;

    private const ulong Present = 1UL << 2;
    private const int LeafShift = 9;
    private const ulong LeafMask = (1UL << LeafShift) - 1;

    private readonly Dictionary<ulong, Leaf> _leaves = new();
    private readonly List<ulong> _scratch = new();

    /// <summary>Populated entries.</summary>
    public long Count { get; private set; }

    /// <summary>An entry for <paramref name="pfn"/> with <paramref name="tag"/>.</summary>
    public static ulong Make(ulong pfn, int tag) => (pfn << 3) | Present | (uint)tag;

    /// <summary>xa_untag_pointer: the page of an entry.</summary>
    public static ulong PfnOf(ulong entry) => entry >> 3;

    /// <summary>xa_pointer_tag.</summary>
    public static int TagOf(ulong entry) => (int)(entry & 3);

    /// <summary>xa_load: the entry at <paramref name="vpn"/>, 0 when empty.</summary>
    public ulong Load(ulong vpn) => _leaves.TryGetValue(vpn >> LeafShift, out var leaf) ? leaf.Entries[vpn & LeafMask] : 0;

    /// <summary>xa_store.</summary>
    public void Store(ulong vpn, ulong entry)
    {
        if (!_leaves.TryGetValue(vpn >> LeafShift, out var leaf))
        {
            leaf = new Leaf();
            _leaves.Add(vpn >> LeafShift, leaf);
        }
        ref ulong slot = ref leaf.Entries[vpn & LeafMask];
        if (slot == 0) { leaf.Used++; Count++; }
        slot = entry;
    }

    /// <summary>xa_erase.</summary>
    public void Erase(ulong vpn)
    {
        ulong key = vpn >> LeafShift;
        if (!_leaves.TryGetValue(key, out var leaf)) return;
        EraseIn(key, leaf, vpn & LeafMask, vpn & LeafMask);
    }

    /// <summary>Erases every entry with <paramref name="first"/> ≤ vpn ≤ <paramref name="last"/> (inclusive).</summary>
    public void EraseRange(ulong first, ulong last)
    {
        if (last < first || Count == 0) return;
        ulong firstKey = first >> LeafShift, lastKey = last >> LeafShift;
        if (lastKey - firstKey < (ulong)_leaves.Count)
        {
            for (ulong key = firstKey; ; key++)
            {
                if (_leaves.TryGetValue(key, out var leaf)) EraseIn(key, leaf, key == firstKey ? first & LeafMask : 0, key == lastKey ? last & LeafMask : LeafMask);
                if (key == lastKey) break;
            }
            return;
        }
        _scratch.Clear();
        foreach (ulong key in _leaves.Keys) if (key >= firstKey && key <= lastKey) _scratch.Add(key);
        foreach (ulong key in _scratch)
            EraseIn(key, _leaves[key], key == firstKey ? first & LeafMask : 0, key == lastKey ? last & LeafMask : LeafMask);
    }

    /// <summary>Whether any entry in [first, last) carries <paramref name="tag"/>.</summary>
    public bool Any(ulong first, ulong end, int tag)
    {
        for (ulong vpn = first; vpn < end; vpn++)
        {
            if (!_leaves.TryGetValue(vpn >> LeafShift, out var leaf)) { vpn |= LeafMask; continue; }
            ulong e = leaf.Entries[vpn & LeafMask];
            if (e != 0 && TagOf(e) == tag) return true;
        }
        return false;
    }

    /// <summary>xa_destroy.</summary>
    public void Clear()
    {
        _leaves.Clear();
        Count = 0;
    }

    private void EraseIn(ulong key, Leaf leaf, ulong from, ulong to)
    {
        for (ulong i = from; i <= to; i++)
        {
            ref ulong slot = ref leaf.Entries[i];
            if (slot == 0) continue;
            slot = 0;
            leaf.Used--;
            Count--;
        }
        if (leaf.Used == 0) _leaves.Remove(key);
    }

    private sealed class Leaf
    {
        public readonly ulong[] Entries = new ulong[1 << LeafShift];
        public int Used;
    }
}
