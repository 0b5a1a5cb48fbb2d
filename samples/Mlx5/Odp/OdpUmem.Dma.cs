using Hmm.Dsl;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.Mlx5;

/// <summary>The NIC's DMA engine reaching memory through the umem's MTT.</summary>
public enum RdmaAtomicOp
{
    /// <summary>IB_WR_ATOMIC_FETCH_AND_ADD.</summary>
    FetchAdd,

    /// <summary>IB_WR_ATOMIC_CMP_AND_SWP.</summary>
    CompareSwap,
}

public sealed partial class OdpUmem
{
    /// <summary>
    /// The hardware's DMA read of [<paramref name="va"/>, +<paramref name="into"/>.Length) through the
    /// MTT: stops at the first page without a readable translation (the QP stalls there and raises a
    /// page fault). Holds <c>umem_mutex</c> for the burst, as an in-flight UMR would: an invalidation
    /// (which takes it) waits until the burst is done, so a zapped entry is never used afterwards.
    /// Returns the bytes read.
    /// </summary>
    [Excludes(nameof(_umemMutex))]
    internal int DmaRead(ulong va, Span<byte> into)
    {
        var copy = _nic.Device.Copy;
        int done = 0;
        _umemMutex.Lock();
        try
        {
            while (done < into.Length)
            {
                ulong a = va + (ulong)done;
                if (!TranslateLocked(a, write: false, out ulong pfn)) break;
                int offset = (int)(a & Page.OffsetMask);
                int n = Math.Min(Page.Size - offset, into.Length - done);
                copy.Read(pfn, offset, into.Slice(done, n));
                done += n;
            }
        }
        finally { _umemMutex.Unlock(); }
        return done;
    }

    /// <summary>The hardware's DMA write through the MTT; stops at the first page without a writable translation. Returns the bytes written.</summary>
    [Excludes(nameof(_umemMutex))]
    internal int DmaWrite(ulong va, ReadOnlySpan<byte> from)
    {
        var copy = _nic.Device.Copy;
        int done = 0;
        _umemMutex.Lock();
        try
        {
            while (done < from.Length)
            {
                ulong a = va + (ulong)done;
                if (!TranslateLocked(a, write: true, out ulong pfn)) break;
                int offset = (int)(a & Page.OffsetMask);
                int n = Math.Min(Page.Size - offset, from.Length - done);
                copy.Write(pfn, offset, from.Slice(done, n));
                done += n;
            }
        }
        finally { _umemMutex.Unlock(); }
        return done;
    }

    /// <summary>
    /// The loopback wire's DMA: up to <paramref name="length"/> bytes from <paramref name="src"/> at
    /// <paramref name="srcVa"/> straight into <paramref name="dst"/> at <paramref name="dstVa"/>, page
    /// by page through both MTTs, with both umems' <c>umem_mutex</c> held for the burst (taken in a
    /// fixed order — lower <see cref="Id"/> first, the second as a nested subclass — so two QPs moving
    /// data in opposite directions cannot deadlock). Stops at the first page either side cannot
    /// translate; <paramref name="dstStalled"/> says which side. Returns the bytes moved.
    /// </summary>
    [MayBlock]
    internal static int Copy(OdpUmem src, ulong srcVa, OdpUmem dst, ulong dstVa, int length, out bool dstStalled)
    {
        dstStalled = false;
        var copy = dst._nic.Device.Copy;
        bool same = ReferenceEquals(src, dst);
        var first = src.Id < dst.Id ? src : dst;
        var second = same ? null : ReferenceEquals(first, src) ? dst : src;
        first.LockUmem(0);
        second?.LockUmem(1);
        int done = 0;
        try
        {
            while (done < length)
            {
                ulong s = srcVa + (ulong)done, d = dstVa + (ulong)done;
                if (!src.TranslateHeld(s, write: false, out ulong sp)) break;
                if (!dst.TranslateHeld(d, write: true, out ulong dp))
                {
                    dstStalled = true;
                    break;
                }
                int so = (int)(s & Page.OffsetMask), dof = (int)(d & Page.OffsetMask);
                int n = Math.Min(Page.Size - Math.Max(so, dof), length - done);
                copy.CopyBetween(sp, so, dp, dof, n);
                done += n;
            }
        }
        finally
        {
            second?.UnlockUmem();
            first.UnlockUmem();
        }
        return done;
    }

    /// <summary>Takes <c>umem_mutex</c> (<paramref name="subclass"/> 1 when nested inside another umem's, lockdep's SINGLE_DEPTH_NESTING).</summary>
    [Acquires(nameof(_umemMutex))]
    private void LockUmem(int subclass) => _umemMutex.Lock(subclass);

    [Releases(nameof(_umemMutex))]
    private void UnlockUmem() => _umemMutex.Unlock();

    /// <summary>The translation, for a caller that holds <c>umem_mutex</c> through <see cref="LockUmem"/>.</summary>
    private bool TranslateHeld(ulong va, bool write, out ulong pfn) => TranslateLocked(va, write, out pfn);

    /// <summary>
    /// An 8-byte RDMA atomic at <paramref name="va"/> (8-byte aligned): atomic with respect to every
    /// other NIC access to the umem (all of them hold <c>umem_mutex</c>), not to the CPU — as IB
    /// atomics without global atomicity. False when the page has no writable translation.
    /// </summary>
    [Excludes(nameof(_umemMutex))]
    internal bool DmaAtomic(ulong va, RdmaAtomicOp op, ulong operand, ulong compare, out ulong original)
    {
        original = 0;
        var copy = _nic.Device.Copy;
        Span<byte> word = stackalloc byte[8];
        _umemMutex.Lock();
        try
        {
            if (!TranslateLocked(va, write: true, out ulong pfn)) return false;
            int offset = (int)(va & Page.OffsetMask);
            copy.Read(pfn, offset, word);
            original = BitConverter.ToUInt64(word);
            ulong result = op == RdmaAtomicOp.FetchAdd ? original + operand : original == compare ? operand : original;
            BitConverter.TryWriteBytes(word, result);
            copy.Write(pfn, offset, word);
            return true;
        }
        finally { _umemMutex.Unlock(); }
    }

    /// <summary>
    /// The hardware's translation of <paramref name="va"/>: the MTT entry, then the host IOMMU for a
    /// DMA address or the peer's BAR decode for a p2p address. With the device's translation check on,
    /// the page reached is compared with the CPU page table (the model: a valid entry under
    /// <c>umem_mutex</c> must still be what the mm maps, since every change invalidates first).
    /// </summary>
    [Requires(nameof(_umemMutex))]
    private bool TranslateLocked(ulong va, bool write, out ulong pfn)
    {
        pfn = 0;
        int idx = (int)((va - Start) >> Page.Shift);
        ulong entry = _mtt[idx];
        if ((entry & MttRead) == 0 || (write && (entry & MttWrite) == 0)) return false;
        ulong address = entry & ~MttFlags;
        bool ok = (entry & MttP2p) != 0 ? _peer!.ResolveBus(address, out pfn) : _nic.Device.Iommu.Translate(address, write, out pfn);
        if (!ok) return false;
        if (_nic.CheckTranslations && !MatchesCpu(va, pfn)) _counters.AddStale();
        return true;
    }

    /// <summary>
    /// The end-state oracle of exploration: valid MTT entries whose page the CPU page table no longer
    /// maps at that address (a stale NIC translation — an invalidation that left an entry behind, or
    /// a fault that installed after one). Takes <c>umem_mutex</c>, so no fault or zap is half done.
    /// </summary>
    [MayBlock]
    public int StaleEntries()
    {
        int stale = 0;
        _umemMutex.Lock();
        try
        {
            for (int i = 0; i < _mtt.Length; i++)
                if (_mtt[i] != 0 && !MatchesCpu(Start + ((ulong)i << Page.Shift), _pfn[i])) stale++;
        }
        finally { _umemMutex.Unlock(); }
        return stale;
    }

    /// <summary>Whether the CPU page table maps <paramref name="va"/> to <paramref name="pfn"/> (a present page, or the peer's private page).</summary>
    private bool MatchesCpu(ulong va, ulong pfn)
    {
        var pte = Process.Mm.EntryAt(va);
        if (pte.Kind is not (PteKind.Present or PteKind.DevicePrivate)) return false;
        ulong expected = pte.IsHuge ? pte.Pfn + ((va >> Page.Shift) & (Page.PmdPages - 1)) : pte.Pfn;
        return expected == pfn;
    }
}
