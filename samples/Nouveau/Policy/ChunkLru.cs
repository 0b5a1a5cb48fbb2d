namespace Hmm.Samples.Nouveau;

/// <summary>
/// The least-recently-used list of allocated 2 MiB VRAM root chunks (uvm_pmm_gpu.c's "used" list,
/// drivers.md C.6). A chunk moves to the tail when it is used (a VA block maps or unpins one of its
/// pages); eviction takes the head, skipping chunks that are temporarily pinned (in the middle of a
/// migration). Chunks are small integer ids (the driver's chunk index); the list is intrusive over
/// two int arrays, so touching and evicting allocate nothing.
/// </summary>
/// <remarks>
/// Oversubscription by itself is nouveau's missing piece (A.10: no runtime eviction, pinned chunks);
/// the UVM policy adds it. Not thread-safe: used under the driver's device-memory lock.
/// </remarks>
public sealed class ChunkLru
{
    private const int None = -1;
    private readonly int[] _prev, _next;
    private readonly bool[] _inList, _pinned;
    private int _head = None, _tail = None;

    /// <summary>A list able to hold chunk ids [0, <paramref name="capacity"/>).</summary>
    public ChunkLru(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _prev = new int[capacity];
        _next = new int[capacity];
        _inList = new bool[capacity];
        _pinned = new bool[capacity];
    }

    /// <summary>Chunk ids the list can hold.</summary>
    public int Capacity => _prev.Length;

    /// <summary>Chunks in the list.</summary>
    public int Count { get; private set; }

    /// <summary>Whether <paramref name="chunk"/> is in the list.</summary>
    public bool Contains(int chunk) => _inList[chunk];

    /// <summary>The least recently used chunk, or -1.</summary>
    public int Oldest => _head;

    /// <summary>Marks <paramref name="chunk"/> most recently used (adding it if absent).</summary>
    public void Touch(int chunk)
    {
        if (_inList[chunk])
        {
            if (_tail == chunk) return;
            Unlink(chunk);
        }
        else
        {
            _inList[chunk] = true;
            Count++;
        }
        _prev[chunk] = _tail;
        _next[chunk] = None;
        if (_tail != None) _next[_tail] = chunk;
        else _head = chunk;
        _tail = chunk;
    }

    /// <summary>Removes <paramref name="chunk"/> (freed, or evicted); no-op when absent.</summary>
    public void Remove(int chunk)
    {
        if (!_inList[chunk]) return;
        Unlink(chunk);
        _inList[chunk] = false;
        _pinned[chunk] = false;
        Count--;
    }

    /// <summary>Temporarily pins <paramref name="chunk"/> (a migration is using it): it cannot be a victim.</summary>
    public void Pin(int chunk) => _pinned[chunk] = true;

    /// <summary>Ends a temporary pin; the chunk moves to the tail (UVM does so when a block unpins a subchunk).</summary>
    public void Unpin(int chunk)
    {
        _pinned[chunk] = false;
        if (_inList[chunk]) Touch(chunk);
    }

    /// <summary>The eviction victim: the least recently used chunk that is not pinned. False when none.</summary>
    public bool TryPickVictim(out int chunk)
    {
        for (int c = _head; c != None; c = _next[c])
        {
            if (_pinned[c]) continue;
            chunk = c;
            return true;
        }
        chunk = None;
        return false;
    }

    /// <summary>Writes the chunks from least to most recently used into <paramref name="order"/>; returns the count.</summary>
    public int CopyOrder(Span<int> order)
    {
        int n = 0;
        for (int c = _head; c != None && n < order.Length; c = _next[c]) order[n++] = c;
        return n;
    }

    private void Unlink(int chunk)
    {
        int p = _prev[chunk], n = _next[chunk];
        if (p != None) _next[p] = n;
        else _head = n;
        if (n != None) _prev[n] = p;
        else _tail = p;
    }
}
