namespace Hmm.Samples.TestHmm;

/// <summary>
/// Simulates <c>dmirror->pt</c>: the device page table, an xarray indexed by <b>virtual page
/// number</b> whose entries are tagged page pointers (untagged = read-only,
/// <see cref="TagWrite"/> = read/write, <see cref="TagAtomic"/> = exclusive/atomic). Entries are
/// pfns of pages the device loads from and stores to; the table holds <b>no page references</b>
/// — it trusts the invalidate callback to erase them in time (reference E.1). Not thread-safe:
/// the owner guards it with its update lock U (<c>dmirror->mutex</c>).
/// </summary>
internal sealed class DevicePageTable
{
    /// <summary>No tag: a read-only mapping.</summary>
    public const int TagRead = 0;

    /// <summary>DPT_XA_TAG_ATOMIC (1): an exclusive mapping made by make_device_exclusive.</summary>
    public const int TagAtomic = 1;

    /// <summary>DPT_XA_TAG_WRITE (3): a read/write mapping.</summary>
    public const int TagWrite = 3;

    private const ulong Present = 1UL << 2;

    private readonly Dictionary<ulong, ulong> _entries = new();
    private readonly List<ulong> _scratch = new();

    /// <summary>Populated entries.</summary>
    public long Count => _entries.Count;

    /// <summary>An entry for <paramref name="pfn"/> with <paramref name="tag"/>.</summary>
    public static ulong Make(ulong pfn, int tag) => (pfn << 3) | Present | (uint)tag;

    /// <summary>xa_untag_pointer: the page of an entry.</summary>
    public static ulong PfnOf(ulong entry) => entry >> 3;

    /// <summary>xa_pointer_tag.</summary>
    public static int TagOf(ulong entry) => (int)(entry & 3);

    /// <summary>xa_load: the entry at <paramref name="vpn"/>, 0 when empty.</summary>
    public ulong Load(ulong vpn) => _entries.GetValueOrDefault(vpn);

    /// <summary>xa_store.</summary>
    public void Store(ulong vpn, ulong entry) => _entries[vpn] = entry;

    /// <summary>
    /// Erases every entry with <paramref name="first"/> ≤ vpn ≤ <paramref name="last"/> (inclusive),
    /// walking whichever is shorter: the range, or the populated entries (RELEASE erases the whole
    /// address space).
    /// </summary>
    public void EraseRange(ulong first, ulong last)
    {
        if (last < first || _entries.Count == 0) return;
        if (last - first < (ulong)_entries.Count)
        {
            for (ulong vpn = first; ; vpn++)
            {
                _entries.Remove(vpn);
                if (vpn == last) return;
            }
        }
        _scratch.Clear();
        foreach (ulong vpn in _entries.Keys) if (vpn >= first && vpn <= last) _scratch.Add(vpn);
        foreach (ulong vpn in _scratch) _entries.Remove(vpn);
    }

    /// <summary>Whether any entry in [first, end) carries <paramref name="tag"/>.</summary>
    public bool Any(ulong first, ulong end, int tag)
    {
        if (end - first < (ulong)_entries.Count)
        {
            for (ulong vpn = first; vpn < end; vpn++)
                if (_entries.TryGetValue(vpn, out ulong e) && TagOf(e) == tag) return true;
            return false;
        }
        foreach (var (vpn, e) in _entries) if (vpn >= first && vpn < end && TagOf(e) == tag) return true;
        return false;
    }

    /// <summary>xa_destroy.</summary>
    public void Clear() => _entries.Clear();
}
