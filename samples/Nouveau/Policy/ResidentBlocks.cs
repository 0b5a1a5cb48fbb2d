using Hmm.Runtime.Memory;

namespace Hmm.Samples.Nouveau;

/// <summary>
/// The 2 MiB VA blocks that hold VRAM pages, in least-recently-used order: UVM's root-chunk LRU
/// (drivers.md C.6) seen from the address space. With 2 MiB device folios a migrated block
/// occupies one root chunk, so evicting the oldest block frees the oldest chunk; eviction moves
/// the whole block back to system memory "one VA block at a time". Slots are recycled through
/// <see cref="ChunkLru"/>, so tracking allocates only when a block is first seen.
/// </summary>
/// <remarks>Not thread-safe: the driver guards it with its policy lock.</remarks>
public sealed class ResidentBlocks
{
    private readonly ChunkLru _lru;
    private readonly ulong[] _blockOfSlot;
    private readonly Dictionary<ulong, int> _slotOfBlock = [];
    private readonly Stack<int> _freeSlots = new();

    /// <summary>Tracks up to <paramref name="capacity"/> blocks at once (the device's chunk count).</summary>
    public ResidentBlocks(int capacity)
    {
        _lru = new ChunkLru(capacity);
        _blockOfSlot = new ulong[capacity];
        for (int s = capacity - 1; s >= 0; s--) _freeSlots.Push(s);
    }

    /// <summary>Blocks tracked.</summary>
    public int Count => _slotOfBlock.Count;

    /// <summary>Whether the block holding <paramref name="va"/> is tracked.</summary>
    public bool Contains(ulong va) => _slotOfBlock.ContainsKey(va & ~(Page.PmdSize - 1));

    /// <summary>Marks the block holding <paramref name="va"/> most recently used; false when full and the block is new.</summary>
    public bool Touch(ulong va)
    {
        ulong block = va & ~(Page.PmdSize - 1);
        if (!_slotOfBlock.TryGetValue(block, out int slot))
        {
            if (_freeSlots.Count == 0) return false;
            slot = _freeSlots.Pop();
            _slotOfBlock.Add(block, slot);
            _blockOfSlot[slot] = block;
        }
        _lru.Touch(slot);
        return true;
    }

    /// <summary>Stops tracking the block holding <paramref name="va"/> (evicted, or emptied).</summary>
    public void Remove(ulong va)
    {
        ulong block = va & ~(Page.PmdSize - 1);
        if (!_slotOfBlock.Remove(block, out int slot)) return;
        _lru.Remove(slot);
        _freeSlots.Push(slot);
    }

    /// <summary>The least recently used block other than <paramref name="except"/> (the block being filled). False when none.</summary>
    public bool TryPickVictim(ulong except, out ulong block)
    {
        ulong keep = except & ~(Page.PmdSize - 1);
        bool pinned = _slotOfBlock.TryGetValue(keep, out int keepSlot);
        if (pinned) _lru.Pin(keepSlot);
        try
        {
            if (_lru.TryPickVictim(out int slot))
            {
                block = _blockOfSlot[slot];
                return true;
            }
            block = 0;
            return false;
        }
        finally
        {
            if (pinned) _lru.Unpin(keepSlot);
        }
    }

    /// <summary>Forgets every block (driver unload).</summary>
    public void Clear()
    {
        foreach (var slot in _slotOfBlock.Values)
        {
            _lru.Remove(slot);
            _freeSlots.Push(slot);
        }
        _slotOfBlock.Clear();
    }
}
