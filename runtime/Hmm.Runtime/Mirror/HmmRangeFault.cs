using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;

namespace Hmm.Runtime.Mirror;

/// <summary>
/// Simulates the mirroring half of mm/hmm.c: <c>hmm_range_fault</c> and the page walk behind it.
/// Drivers call it as <see cref="HmmRange.Fault"/>.
/// </summary>
internal static class HmmRangeFault
{
    // hmm_vma_walk's required_fault bits (HMM_NEED_FAULT, HMM_NEED_WRITE_FAULT).
    private const int NeedFault = 1;
    private const int NeedWriteFault = 2;
    private const int NeedAll = NeedFault | NeedWriteFault;

    /// <summary>hmm_range_fault; the contract is documented on <see cref="HmmRange.Fault"/>.</summary>
    public static Errno Run(HmmRange range)
    {
        ArgumentNullException.ThrowIfNull(range);
        IntervalNotifier? notifier = range.Notifier;
        AddressSpace? mm = notifier?.Mm;
        if (notifier == null || mm == null || !notifier.IsInserted)
            throw new KernelBugException("HMM-R02", $"hmm_range_fault: {range} has no inserted interval notifier");
        if (!mm.MmapLock.IsLocked)
            throw new KernelBugException("HMM-R01", $"hmm_range_fault called without mm {mm.Id}'s mmap lock held");
        ulong start = range.Start, end = range.End;
        ulong[]? pfns = range.HmmPfns;
        if (end <= start || !Page.IsAligned(start) || !Page.IsAligned(end))
            throw new KernelBugException("HMM-R16", $"hmm_range_fault: [0x{start:x}, 0x{end:x}) is not a non-empty page-aligned range");
        if (pfns == null || (ulong)pfns.LongLength != (end - start) >> Page.Shift)
            throw new KernelBugException("HMM-R16", $"hmm_range_fault: hmm_pfns has {pfns?.Length ?? 0} entries for {(end - start) >> Page.Shift} pages");
        LockValidator.MightSleep("hmm_range_fault");

        var walk = new Walker(range, mm, pfns);
        ulong seq = range.NotifierSeq;
        while (true)
        {
            // If the range is no longer valid force a retry (mmu_interval_check_retry).
            if (notifier.CheckRetry(seq)) return Errno.EBUSY;
            // Entries below walk.Last hold outputs, the rest untouched inputs; -EBUSY from the
            // walk means a fault (or migration wait) happened and the walk restarts at Last.
            Errno err = walk.WalkRange();
            if (err != Errno.EBUSY) return err;
        }
    }

    /// <summary>hmm_vma_walk plus the walk_page_range machinery it drives.</summary>
    private struct Walker
    {
        private readonly HmmRange _range;
        private readonly AddressSpace _mm;
        private readonly PageTables _tables;
        private readonly ulong[] _pfns;
        private readonly ulong _rangeStart;
        private readonly ulong _default;
        private readonly ulong _mask;
        private readonly bool _mayFault;
        private Vma? _vma;

        /// <summary>hmm_vma_walk.last.</summary>
        public ulong Last;

        public Walker(HmmRange range, AddressSpace mm, ulong[] pfns)
        {
            _range = range;
            _mm = mm;
            _tables = mm.Tables;
            _pfns = pfns;
            _rangeStart = range.Start;
            _default = range.DefaultFlags;
            _mask = range.PfnFlagsMask;
            // hmm_range_need_fault's shortcut: nothing can fault when neither source of request
            // bits carries REQ_FAULT.
            _mayFault = ((_default | _mask) & HmmPfn.ReqFault) != 0;
            _vma = null;
            Last = range.Start;
        }

        /// <summary>walk_page_range(mm, last, end): VMAs, holes between them, test_walk, then the tables.</summary>
        public Errno WalkRange()
        {
            ulong start = Last, end = _range.End;
            VmaList tree = _mm.VmaTree;
            int vi = tree.IndexAfter(start);
            while (start < end)
            {
                Vma? vma = vi < tree.Count ? tree[vi] : null;
                ulong next;
                Errno err;
                if (vma == null || start < vma.Start)
                {
                    // Outside any VMA: pte_hole with walk->vma == NULL.
                    next = vma == null ? end : Math.Min(end, vma.Start);
                    _vma = null;
                    err = Hole(start, next);
                }
                else
                {
                    next = Math.Min(end, vma.End);
                    vi++;
                    _vma = vma;
                    // hmm_vma_walk_test: VMAs without struct pages or without read access.
                    VmFlags flags = vma.Flags;
                    if ((flags & (VmFlags.Io | VmFlags.PfnMap)) != 0 || (flags & VmFlags.Read) == 0)
                    {
                        if (RangeNeedFault(start, next, 0) != 0) return Errno.EFAULT;
                        Fill(start, next, HmmPfn.Error);
                        start = next;
                        continue;
                    }
                    err = vma.IsHugeTlb ? WalkHugeTlb(start, next) : WalkTables(start, next);
                }
                if (err != Errno.Ok) return err;
                start = next;
            }
            return Errno.Ok;
        }

        /// <summary>walk_pgd_range → walk_pud_range → walk_pmd_range over one VMA span.</summary>
        private Errno WalkTables(ulong addr, ulong end)
        {
            while (addr < end)
            {
                ulong[]? pmdTable = _tables.PmdTable(addr, allocate: false);
                if (pmdTable == null)
                {
                    // pgd_none / pud_none: one hole up to that level's boundary.
                    ulong size = 1UL << _tables.HoleShift(addr);
                    ulong holeEnd = Math.Min((addr & ~(size - 1)) + size, end);
                    Errno e = Hole(addr, holeEnd);
                    if (e != Errno.Ok) return e;
                    addr = holeEnd;
                    continue;
                }
                const ulong pudSize = 1UL << Page.PudShift;
                ulong pudEnd = Math.Min((addr & ~(pudSize - 1)) + pudSize, end);
                do
                {
                    ulong next = Math.Min((addr & ~(Page.PmdSize - 1)) + Page.PmdSize, pudEnd);
                    Errno e = WalkPmd(ref pmdTable[PageTables.PmdIndex(addr)], addr, next);
                    if (e != Errno.Ok) return e;
                    addr = next;
                }
                while (addr < pudEnd);
            }
            return Errno.Ok;
        }

        /// <summary>hmm_vma_walk_pmd for [addr, end) inside one PMD.</summary>
        private Errno WalkPmd(ref ulong pmdSlot, ulong addr, ulong end)
        {
            ulong pmd = Volatile.Read(ref pmdSlot);
            if (PageTables.IsTable(pmd)) return WalkPtes(_tables.TableOf(pmd), addr, end);
            if (pmd == 0) return Hole(addr, end);
            if ((pmd & Pte.PresentBit) == 0)
            {
                var kind = (PteKind)((pmd & Pte.KindMask) >> Pte.KindShift);
                if (kind == PteKind.Migration)
                {
                    // PMD migration entry: wait for the migration and re-walk, or report 0.
                    if (RangeNeedFault(addr, end, 0) != 0)
                    {
                        Last = addr;
                        WaitMigration(addr, pmd, huge: true);
                        return Errno.EBUSY;
                    }
                    Fill(addr, end, 0);
                    return Errno.Ok;
                }
                // hmm_vma_handle_absent_pmd: a device-private PMD of our owner is reported.
                ulong pfn = (pmd & Pte.PfnMask) >> Pte.PfnShift;
                if (kind == PteKind.DevicePrivate && OwnerMatches(pfn))
                {
                    ulong cpu = HmmPfn.Valid | ((pmd & Pte.WriteBit) != 0 ? HmmPfn.Write : 0) | ((ulong)Page.PmdOrder << HmmPfn.OrderShift);
                    FillPfns(addr, end, pfn + ((addr & (Page.PmdSize - 1)) >> Page.Shift), cpu);
                    return Errno.Ok;
                }
                int required = RangeNeedFault(addr, end, 0);
                if (required != 0)
                    return kind == PteKind.DevicePrivate ? Fault(addr, end, required) : Errno.EFAULT;
                Fill(addr, end, HmmPfn.Error);
                return Errno.Ok;
            }
            if ((pmd & Pte.HugeBit) != 0) return HandlePmd(pmd, addr, end);
            // pmd_bad: neither a table nor a leaf.
            if (RangeNeedFault(addr, end, 0) != 0) return Errno.EFAULT;
            Fill(addr, end, HmmPfn.Error);
            return Errno.Ok;
        }

        /// <summary>hmm_vma_handle_pmd: a present THP (or huge zero page) PMD leaf.</summary>
        private Errno HandlePmd(ulong pmd, ulong addr, ulong end)
        {
            // pmd_to_hmm_pfn_flags: protnone → 0; else VALID[|WRITE] with order 9.
            ulong cpu = (pmd & Pte.ProtNoneBit) != 0 ? 0
                : HmmPfn.Valid | ((pmd & Pte.WriteBit) != 0 ? HmmPfn.Write : 0) | ((ulong)Page.PmdOrder << HmmPfn.OrderShift);
            int required = RangeNeedFault(addr, end, cpu);
            if (required != 0) return Fault(addr, end, required);
            ulong pfn = ((pmd & Pte.PfnMask) >> Pte.PfnShift) + ((addr & (Page.PmdSize - 1)) >> Page.Shift);
            FillPfns(addr, end, pfn, cpu);
            return Errno.Ok;
        }

        /// <summary>walk_hugetlb_range + hmm_vma_walk_hugetlb_entry over one hugetlb VMA span (2 MiB hstate).</summary>
        private Errno WalkHugeTlb(ulong addr, ulong end)
        {
            while (addr < end)
            {
                ulong chunk = addr & ~(Page.PmdSize - 1);
                ulong next = Math.Min(chunk + Page.PmdSize, end);
                ulong[]? pmdTable = _tables.PmdTable(addr, allocate: false);
                Errno e;
                if (pmdTable == null) e = Hole(addr, next);   // hugetlb_walk found no table
                else
                {
                    ulong entry = Volatile.Read(ref pmdTable[PageTables.PmdIndex(addr)]);
                    // A single request, the entry at the start of the chunk, stands for the whole chunk.
                    ulong req = _pfns[(addr - _rangeStart) >> Page.Shift];
                    ulong cpu = PteToHmmFlags(entry) | ((ulong)Page.PmdOrder << HmmPfn.OrderShift);
                    int required = PteNeedFault(req, cpu);
                    if (required != 0) e = Fault(addr, next, required);
                    else
                    {
                        // As the kernel does, a none huge PTE yields pfn 0 + offset with only the order bits.
                        FillPfns(addr, next, ((entry & Pte.PfnMask) >> Pte.PfnShift) + ((addr - chunk) >> Page.Shift), cpu);
                        e = Errno.Ok;
                    }
                }
                if (e != Errno.Ok) return e;
                addr = next;
            }
            return Errno.Ok;
        }

        /// <summary>hmm_vma_walk_hole: no table or no VMA for [addr, end).</summary>
        private Errno Hole(ulong addr, ulong end)
        {
            int required = RangeNeedFault(addr, end, 0);
            if (_vma == null)
            {
                if (required != 0) return Errno.EFAULT;
                Fill(addr, end, HmmPfn.Error);
                return Errno.Ok;
            }
            if (required != 0) return Fault(addr, end, required);
            Fill(addr, end, 0);
            return Errno.Ok;
        }

        /// <summary>
        /// The PTE loop of hmm_vma_walk_pmd over [addr, end) of one PTE table. Four entries at a
        /// time: when every one is a plain present page (present; not special, protnone or huge)
        /// and none needs a write fault, the outputs are computed in vector registers; otherwise
        /// those four go through <see cref="HandlePte"/> one by one, in order.
        /// </summary>
        private Errno WalkPtes(ulong[] ptes, ulong addr, ulong end)
        {
            int n = (int)((end - addr) >> Page.Shift);
            int ti = PageTables.PteIndex(addr);
            int oi = (int)((addr - _rangeStart) >> Page.Shift);
            if ((uint)(ti + n) > (uint)ptes.Length || (uint)(oi + n) > (uint)_pfns.Length)
                throw new IndexOutOfRangeException();
            ref ulong src = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(ptes), ti);
            ref ulong dst = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_pfns), oi);
            int k = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                Vector256<ulong> kindMask = Vector256.Create(Pte.PresentBit | Pte.SpecialBit | Pte.ProtNoneBit | Pte.HugeBit);
                Vector256<ulong> present = Vector256.Create(Pte.PresentBit);
                Vector256<ulong> writeBit = Vector256.Create(Pte.WriteBit);
                Vector256<ulong> pfnMask = Vector256.Create(Pte.PfnMask);
                Vector256<ulong> valid = Vector256.Create(HmmPfn.Valid);
                Vector256<ulong> inOut = Vector256.Create(HmmPfn.InOutFlags);
                Vector256<ulong> mask = Vector256.Create(_mask);
                Vector256<ulong> dflt = Vector256.Create(_default);
                Vector256<ulong> sign = Vector256.Create(1UL << 63);
                bool mayFault = _mayFault;
                for (; k <= n - 4; k += 4)
                {
                    Vector256<ulong> p = Vector256.LoadUnsafe(ref src, (nuint)k);
                    Vector256<ulong> input = Vector256.LoadUnsafe(ref dst, (nuint)k);
                    Vector256<ulong> bad = (p & kindMask) ^ present;
                    if (mayFault)
                    {
                        // Bit 63 of eff & (eff << 1) & (~pte << 62): REQ_FAULT, REQ_WRITE, and no
                        // CPU write permission — the only fault a plain present page can need.
                        Vector256<ulong> eff = (input & mask) | dflt;
                        bad |= eff & (eff << 1) & ~(p << 62) & sign;
                    }
                    if (bad == Vector256<ulong>.Zero)
                    {
                        Vector256<ulong> output = (input & inOut) | valid | ((p & writeBit) << 61) | ((p & pfnMask) >> Pte.PfnShift);
                        output.StoreUnsafe(ref dst, (nuint)k);
                        continue;
                    }
                    for (int j = k; j < k + 4; j++)
                    {
                        Errno e = HandlePte(ref Unsafe.Add(ref dst, j), Volatile.Read(ref Unsafe.Add(ref src, j)), addr + ((ulong)j << Page.Shift), end);
                        if (e != Errno.Ok) return e;
                    }
                }
            }
            for (; k < n; k++)
            {
                Errno e = HandlePte(ref Unsafe.Add(ref dst, k), Volatile.Read(ref Unsafe.Add(ref src, k)), addr + ((ulong)k << Page.Shift), end);
                if (e != Errno.Ok) return e;
            }
            return Errno.Ok;
        }

        /// <summary>hmm_vma_handle_pte: one PTE; a fault covers [addr, end) with one read/write flag.</summary>
        private Errno HandlePte(ref ulong hmmPfn, ulong raw, ulong addr, ulong end)
        {
            ulong req = hmmPfn;
            ulong newFlags;
            int required;
            if ((raw & Pte.PresentBit) == 0)
            {
                var kind = raw == 0 ? PteKind.None : (PteKind)((raw & Pte.KindMask) >> Pte.KindShift);
                if (kind is PteKind.None or PteKind.Marker)
                {
                    // pte_none_mostly.
                    required = PteNeedFault(req, 0);
                    if (required != 0) return Fault(addr, end, required);
                    newFlags = 0;
                }
                else
                {
                    ulong pfn = (raw & Pte.PfnMask) >> Pte.PfnShift;
                    // Device-private pages of our own pgmap are reported, never faulted (H.2).
                    if (kind == PteKind.DevicePrivate && OwnerMatches(pfn))
                    {
                        newFlags = pfn | HmmPfn.Valid | ((raw & Pte.WriteBit) != 0 ? HmmPfn.Write : 0);
                    }
                    else
                    {
                        required = PteNeedFault(req, 0);
                        if (required == 0) newFlags = 0;
                        else switch (kind)
                        {
                            case PteKind.Swap:
                            case PteKind.DevicePrivate:
                            case PteKind.DeviceExclusive:
                                return Fault(addr, end, required);
                            case PteKind.Migration:
                                Last = addr;
                                WaitMigration(addr, raw, huge: false);
                                return Errno.EBUSY;
                            default:
                                return Errno.EFAULT;   // hwpoison and anything else
                        }
                    }
                }
            }
            else
            {
                ulong cpu = PteToHmmFlags(raw);
                required = PteNeedFault(req, cpu);
                if (required != 0) return Fault(addr, end, required);
                ulong pfn = (raw & Pte.PfnMask) >> Pte.PfnShift;
                // !vm_normal_page && !is_zero_pfn: a special mapping has no struct page.
                if ((raw & Pte.SpecialBit) != 0 && pfn != Machine.ZeroPfn)
                {
                    if (PteNeedFault(req, 0) != 0) return Errno.EFAULT;
                    newFlags = HmmPfn.Error;
                }
                else newFlags = pfn | cpu;
            }
            hmmPfn = (hmmPfn & HmmPfn.InOutFlags) | newFlags;
            return Errno.Ok;
        }

        /// <summary>
        /// hmm_vma_fault: handle_mm_fault (remote) for every page of [addr, end), all reads or
        /// all writes; -EBUSY so the walk restarts at <paramref name="addr"/>.
        /// </summary>
        private Errno Fault(ulong addr, ulong end, int required)
        {
            Vma vma = _vma!;
            Last = addr;
            bool write = (required & NeedWriteFault) != 0;
            if (write && (vma.Flags & VmFlags.Write) == 0) return Errno.EPERM;
            LockValidator.MightSleep("hmm_range_fault: handle_mm_fault");
            for (; addr < end; addr += Page.Size)
                if (_mm.HandleVmaFault(vma, addr, write) != FaultResult.Ok) return Errno.EFAULT;
            return Errno.EBUSY;
        }

        /// <summary>
        /// migration_entry_wait (pmd_migration_entry_wait for a PMD): sleeps until the migrating
        /// page is unlocked, then the walk restarts. The entry was read without the PTL, so the
        /// page is looked up only under it, with the entry re-checked: the migration may have
        /// finished and the page's device memory been unplugged since (issue 8, PAGE-R02).
        /// </summary>
        private readonly void WaitMigration(ulong addr, ulong entry, bool huge)
        {
            LockValidator.MightSleep("hmm_range_fault: migration_entry_wait");
            _mm.MigrationEntryWait(huge ? addr & ~(Page.PmdSize - 1) : addr, entry, huge);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly bool OwnerMatches(ulong pfn)
        {
            object? owner = _mm.Machine.DevicePrivateOwner(pfn);
            return owner != null && ReferenceEquals(owner, _range.DevPrivateOwner);
        }

        /// <summary>pte_to_hmm_pfn_flags.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static ulong PteToHmmFlags(ulong raw)
        {
            if ((raw & Pte.PresentBit) == 0 || (raw & Pte.ProtNoneBit) != 0) return 0;
            return (raw & Pte.WriteBit) != 0 ? HmmPfn.Valid | HmmPfn.Write : HmmPfn.Valid;
        }

        /// <summary>hmm_pte_need_fault.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly int PteNeedFault(ulong req, ulong cpu)
        {
            req = (req & _mask) | _default;
            if ((req & HmmPfn.ReqFault) == 0) return 0;
            if ((req & HmmPfn.ReqWrite) != 0 && (cpu & HmmPfn.Write) == 0) return NeedFault | NeedWriteFault;
            if ((cpu & HmmPfn.Valid) == 0) return NeedFault;
            return 0;
        }

        /// <summary>hmm_range_need_fault over [addr, end).</summary>
        private readonly int RangeNeedFault(ulong addr, ulong end, ulong cpu)
        {
            if (!_mayFault) return 0;
            int required = 0;
            int i = (int)((addr - _rangeStart) >> Page.Shift), n = (int)((end - addr) >> Page.Shift);
            ulong[] pfns = _pfns;
            for (int k = i; k < i + n; k++)
            {
                required |= PteNeedFault(pfns[k], cpu);
                if (required == NeedAll) break;
            }
            return required;
        }

        /// <summary>hmm_pfns_fill: keep the sticky bits, set <paramref name="flags"/>.</summary>
        private readonly void Fill(ulong addr, ulong end, ulong flags)
        {
            Span<ulong> span = _pfns.AsSpan((int)((addr - _rangeStart) >> Page.Shift), (int)((end - addr) >> Page.Shift));
            for (int k = 0; k < span.Length; k++) span[k] = (span[k] & HmmPfn.InOutFlags) | flags;
        }

        /// <summary>Outputs (pfn + i) | <paramref name="cpu"/> for consecutive pfns (PMD leaves, hugetlb).</summary>
        private readonly void FillPfns(ulong addr, ulong end, ulong firstPfn, ulong cpu)
        {
            Span<ulong> span = _pfns.AsSpan((int)((addr - _rangeStart) >> Page.Shift), (int)((end - addr) >> Page.Shift));
            // cpu only has bits ≥ 53 and pfns stay below 2^40, so (pfn | cpu) + i == (pfn + i) | cpu.
            ulong word = firstPfn | cpu;
            int k = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                ref ulong dst = ref MemoryMarshal.GetReference(span);
                Vector256<ulong> words = Vector256.Create(word) + Vector256.Create(0UL, 1UL, 2UL, 3UL);
                Vector256<ulong> four = Vector256.Create(4UL);
                Vector256<ulong> inOut = Vector256.Create(HmmPfn.InOutFlags);
                for (; k <= span.Length - 4; k += 4)
                {
                    ((Vector256.LoadUnsafe(ref dst, (nuint)k) & inOut) | words).StoreUnsafe(ref dst, (nuint)k);
                    words += four;
                }
            }
            for (; k < span.Length; k++) span[k] = (span[k] & HmmPfn.InOutFlags) | (word + (ulong)k);
        }
    }
}
