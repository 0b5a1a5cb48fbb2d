using Hmm.Runtime.Scheduling;
using System.Numerics;

namespace Hmm.Runtime.Memory;

/// <summary>
/// Simulates the buddy allocator for the two orders HMM needs: 4 KiB base pages (order 0) and
/// 2 MiB folios (order 9, THP and hugetlb). Memory is carved into 512-page blocks; a block is
/// free (on the free-block list), partial (on the partial list, with a free bitmap of its base
/// pages) or fully used. Order-0 allocations fill partial blocks first so whole blocks stay
/// available for 2 MiB allocations (the buddy allocator's anti-fragmentation goal, simplified).
/// </summary>
/// <remarks>
/// Allocation sets the frame's <see cref="PageFrames.RefCount"/> to 1, its order, and clears the
/// free flag; it does not clear the bytes (callers clear or copy, as the kernel's
/// __GFP_ZERO / copy paths do). Freeing a frame whose refcount is not zero, or freeing twice, is a
/// <see cref="KernelBugException"/> (PAGE-R01). All operations take one spinlock and allocate nothing.
/// </remarks>
public sealed class FrameAllocator
{
    private const int BlockPages = Page.PmdPages;
    private const int WordsPerBlock = BlockPages / 64;

    private readonly PageFrames _frames;
    private readonly ulong _firstPfn;
    private readonly int _blocks;
    private readonly ulong[] _freeBits;     // per block: bit set = base page free
    private readonly int[] _freeInBlock;
    private readonly int[] _next, _prev;    // intrusive doubly linked lists of blocks
    private readonly byte[] _listOf;        // which list a block is on
    private int _freeHead = -1, _partialHead = -1;
    private long _freePages;
    private readonly Locking.SpinLock _lock = new("memory.zone_lock");

    private const byte OnNone = 0, OnFree = 1, OnPartial = 2;

    /// <summary>Creates an allocator over <paramref name="blocks"/> 2 MiB blocks starting at <paramref name="firstPfn"/> (2 MiB aligned).</summary>
    public FrameAllocator(PageFrames frames, ulong firstPfn, int blocks)
    {
        if ((firstPfn & (BlockPages - 1)) != 0) throw new ArgumentException("first pfn must be 2 MiB aligned", nameof(firstPfn));
        _frames = frames;
        _firstPfn = firstPfn;
        _blocks = blocks;
        _freeBits = new ulong[blocks * WordsPerBlock];
        _freeInBlock = new int[blocks];
        _next = new int[blocks];
        _prev = new int[blocks];
        _listOf = new byte[blocks];
        Array.Fill(_freeBits, ulong.MaxValue);
        for (int b = blocks - 1; b >= 0; b--)
        {
            _freeInBlock[b] = BlockPages;
            Push(ref _freeHead, b, OnFree);
        }
        for (ulong pfn = firstPfn; pfn < firstPfn + (ulong)blocks * BlockPages; pfn++)
            frames.Flags(pfn) = PageFlags.Free;
        _freePages = (long)blocks * BlockPages;
        TotalPages = _freePages;
    }

    /// <summary>Pages managed.</summary>
    public long TotalPages { get; }

    /// <summary>Pages currently free.</summary>
    public long FreePages => Volatile.Read(ref _freePages);

    /// <summary>Whether <paramref name="pfn"/> is one of this allocator's frames.</summary>
    public bool Contains(ulong pfn) => pfn - _firstPfn < (ulong)TotalPages;

    /// <summary>
    /// alloc_pages(order): order 0 or 9. Returns false when no suitable frame is free (the caller
    /// turns that into -ENOMEM or VM_FAULT_OOM); nothing changes then.
    /// </summary>
    public bool TryAllocate(int order, out ulong pfn)
    {
        if (order != 0 && order != Page.PmdOrder) throw new ArgumentOutOfRangeException(nameof(order), "orders 0 and 9 are supported");
        if (FaultInjection.Fails(order == 0 ? FaultSite.SystemPage : FaultSite.SystemLargePage)) { pfn = 0; return false; }
        _lock.Lock();
        try
        {
            if (order == 0)
            {
                int b = _partialHead;
                if (b < 0)
                {
                    b = _freeHead;
                    if (b < 0) { pfn = 0; return false; }
                    Unlink(ref _freeHead, b);
                    Push(ref _partialHead, b, OnPartial);
                }
                int w = b * WordsPerBlock;
                while (_freeBits[w] == 0) w++;
                int bit = BitOperations.TrailingZeroCount(_freeBits[w]);
                _freeBits[w] &= ~(1UL << bit);
                if (--_freeInBlock[b] == 0) { Unlink(ref _partialHead, b); _listOf[b] = OnNone; }
                pfn = _firstPfn + (ulong)((w * 64) + bit);
                _freePages--;
            }
            else
            {
                int b = _freeHead;
                if (b < 0) { pfn = 0; return false; }
                Unlink(ref _freeHead, b);
                _listOf[b] = OnNone;
                _freeBits.AsSpan(b * WordsPerBlock, WordsPerBlock).Clear();
                _freeInBlock[b] = 0;
                pfn = _firstPfn + (ulong)b * BlockPages;
                _freePages -= BlockPages;
            }
        }
        finally { _lock.Unlock(); }

        _frames.RefCount(pfn) = 1;
        _frames.MapCount(pfn) = 0;
        _frames.PinCount(pfn) = 0;
        _frames.EntireMapCount(pfn) = 0;
        _frames.Owner(pfn) = 0;
        _frames.Index(pfn) = 0;
        _frames.Order(pfn) = (byte)order;
        if (order == 0) _frames.Flags(pfn) = PageFlags.None;
        else
        {
            _frames.Flags(pfn) = PageFlags.Head;
            for (ulong t = 1; t < BlockPages; t++) _frames.Flags(pfn + t) = PageFlags.Tail;
        }
        return true;
    }

    /// <summary>
    /// __free_pages: returns the folio headed at <paramref name="pfn"/> (whose refcount must already
    /// be zero) to the allocator.
    /// </summary>
    public void Free(ulong pfn)
    {
        int order = TakeBack(pfn);
        _lock.Lock();
        try { ReleaseLocked(pfn, order); }
        finally { _lock.Unlock(); }
    }

    /// <summary>
    /// free_unref_folios: <see cref="Free"/> for a batch of folios (a migration's source pages),
    /// their states checked and reset first, then returned under one hold of the zone lock per
    /// 512 folios. A bad page state throws before that part of the batch is returned.
    /// </summary>
    public void FreeBatch(ReadOnlySpan<ulong> pfns)
    {
        // TakeBack resets each frame's order, so the orders are kept aside; 512 folios per lock hold.
        Span<byte> orders = stackalloc byte[Page.PmdPages];
        while (!pfns.IsEmpty)
        {
            var part = pfns.Slice(0, Math.Min(pfns.Length, Page.PmdPages));
            for (int i = 0; i < part.Length; i++) orders[i] = (byte)TakeBack(part[i]);
            _lock.Lock();
            try
            {
                for (int i = 0; i < part.Length; i++) ReleaseLocked(part[i], orders[i]);
            }
            finally { _lock.Unlock(); }
            pfns = pfns.Slice(part.Length);
        }
    }

    /// <summary>The free path's bad-page checks and state reset, outside the lock; returns the folio's order.</summary>
    private int TakeBack(ulong pfn)
    {
        if (!Contains(pfn)) throw new KernelBugException("PAGE-R01", $"free of pfn 0x{pfn:x} not managed by this allocator");
        ref var flags = ref _frames.Flags(pfn);
        if ((flags & (PageFlags.Free | PageFlags.Reserved | PageFlags.Tail)) != 0)
            throw new KernelBugException("PAGE-R01", $"bad page state freeing pfn 0x{pfn:x}: {flags} (double free or tail page)");
        int refs = _frames.RefCount(pfn);
        if (refs != 0 || _frames.MapCount(pfn) != 0 || _frames.PinCount(pfn) != 0 || _frames.EntireMapCount(pfn) != 0)
            throw new KernelBugException("PAGE-R01", $"bad page state freeing pfn 0x{pfn:x}: refcount {refs}, mapcount {_frames.MapCount(pfn)}, pins {_frames.PinCount(pfn)}");
        int order = _frames.Order(pfn);
        flags = PageFlags.Free;
        _frames.Order(pfn) = 0;
        _frames.Owner(pfn) = 0;
        return order;
    }

    /// <summary>Puts a checked folio back on the free lists. Caller holds the zone lock.</summary>
    private void ReleaseLocked(ulong pfn, int order)
    {
        ulong rel = pfn - _firstPfn;
        int b = (int)(rel / BlockPages);
        if (order == Page.PmdOrder)
        {
            for (ulong t = 1; t < BlockPages; t++) _frames.Flags(pfn + t) = PageFlags.Free;
            _freeBits.AsSpan(b * WordsPerBlock, WordsPerBlock).Fill(ulong.MaxValue);
            _freeInBlock[b] = BlockPages;
            Push(ref _freeHead, b, OnFree);
            _freePages += BlockPages;
            return;
        }
        int idx = (int)(rel % BlockPages);
        _freeBits[(b * WordsPerBlock) + (idx >> 6)] |= 1UL << (idx & 63);
        int now = ++_freeInBlock[b];
        if (now == 1) Push(ref _partialHead, b, OnPartial);
        else if (now == BlockPages)
        {
            Unlink(ref _partialHead, b);
            Push(ref _freeHead, b, OnFree);
        }
        _freePages++;
    }

    private void Push(ref int head, int b, byte list)
    {
        _prev[b] = -1;
        _next[b] = head;
        if (head >= 0) _prev[head] = b;
        head = b;
        _listOf[b] = list;
    }

    private void Unlink(ref int head, int b)
    {
        if (_prev[b] >= 0) _next[_prev[b]] = _next[b];
        else head = _next[b];
        if (_next[b] >= 0) _prev[_next[b]] = _prev[b];
        _listOf[b] = OnNone;
    }
}
