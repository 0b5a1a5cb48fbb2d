using Hmm.Dsl;
using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

/// <summary>
/// Pages pinned by <see cref="Process.PinUserPages"/> (pin_user_pages with FOLL_PIN); disposing
/// unpins them (unpin_user_pages). A pinned page is never migrated and is copied, not shared,
/// by fork.
/// </summary>
public sealed class PinnedPages : IDisposable
{
    private readonly Machine _machine;
    private readonly ulong[] _pfns;
    private int _released;

    internal PinnedPages(Machine machine, ulong[] pfns, bool longTerm)
    {
        _machine = machine;
        _pfns = pfns;
        LongTerm = longTerm;
    }

    /// <summary>The pinned page of each virtual page, in order.</summary>
    public IReadOnlyList<ulong> Pfns => _pfns;

    /// <summary>Whether the pin is FOLL_LONGTERM.</summary>
    public bool LongTerm { get; }

    /// <summary>unpin_user_pages. Idempotent.</summary>
    [ReleasesReference("pin", "this")]
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        foreach (ulong pfn in _pfns) AddressSpace.Unpin(_machine, pfn);
    }
}

public sealed partial class AddressSpace
{
    /// <summary>
    /// pin_user_pages: faults in and pins <paramref name="npages"/> pages from
    /// <paramref name="addr"/> (rounded down to its page). A pin of private anonymous memory
    /// first makes each page an exclusive anonymous page (breaking COW, replacing the zero page)
    /// when the VMA is writable, so the pinned page is the one the process keeps using.
    /// Device-private pages come back to system memory through the fault; with
    /// <paramref name="longTerm"/> (FOLL_LONGTERM) device-coherent pages are first migrated to
    /// system memory, while a short pin leaves them in place. EFAULT for an unmapped address or
    /// a VMA without the needed permission, VM_IO/VM_PFNMAP, or device p2p memory; nothing stays
    /// pinned on failure.
    /// </summary>
    internal PinnedPages PinUserPages(ulong addr, int npages, bool write, bool longTerm)
    {
        if (npages <= 0) throw Fail(Errno.EINVAL, "npages must be positive");
        ulong start = Page.AlignDown(addr);
        if (start + ((ulong)npages << Page.Shift) < start) throw Fail(Errno.EFAULT, "the range wraps");
        var pfns = new ulong[npages];
        int pinned = 0;
        MmapLock.ReadLock();
        try
        {
            CheckAlive();
            for (; pinned < npages; pinned++)
            {
                var result = PinOne(start + ((ulong)pinned << Page.Shift), write, longTerm, out pfns[pinned]);
                if (result != Errno.Ok)
                {
                    for (int i = 0; i < pinned; i++) Unpin(Machine, pfns[i]);
                    throw Fail(result, $"pinning page {pinned} at 0x{start + ((ulong)pinned << Page.Shift):x} failed");
                }
            }
        }
        finally { MmapLock.ReadUnlock(); }
        return new PinnedPages(Machine, pfns, longTerm);
    }

    /// <summary>
    /// Takes a reference on the folio <paramref name="entry"/> maps at <paramref name="va"/>, under
    /// the PTL and only if the slot still holds that entry (so the folio is live and its struct
    /// page valid); <paramref name="head"/> is recomputed there. False when the entry changed.
    /// </summary>
    internal bool TryGrabMapped(ulong va, bool huge, Pte entry, ref ulong head)
    {
        PageTableLock.Lock();
        try
        {
            ref ulong slot = ref SlotFor(va, huge);
            if (System.Runtime.CompilerServices.Unsafe.IsNullRef(ref slot) || Volatile.Read(ref slot) != entry.Raw) return false;
            ulong pfn = huge ? entry.Pfn + ((va & (Page.PmdSize - 1)) >> Page.Shift) : entry.Pfn;
            head = Frames.FolioHead(pfn);
            return Machine.TryGetPage(head);
        }
        finally { PageTableLock.Unlock(); }
    }

    private Errno PinOne(ulong va, bool write, bool longTerm, out ulong pinnedPfn)
    {
        pinnedPfn = 0;
        for (int attempt = 0; attempt < MaxFaultRetries; attempt++)
        {
            var vma = VmaTree.Lookup(va);
            if (vma == null || (vma.Flags & (VmFlags.Io | VmFlags.PfnMap)) != 0) return Errno.EFAULT;
            if (write ? (vma.Flags & VmFlags.Write) == 0 : (vma.Flags & VmFlags.Read) == 0) return Errno.EFAULT;
            var entry = ReadEntry(va, out bool huge);
            bool usable = entry.Kind == PteKind.Present && !entry.IsProtNone && (!write || entry.IsWritable);
            // gup_must_unshare: a pinned anonymous page (or the zero page standing in for one) must
            // be exclusive to this mapping — in any private writable mapping, file-backed ones
            // included — so a later COW cannot leave the pin on a page the process no longer uses.
            // Page-cache pages are not unshared (a R/O pin of a MAP_PRIVATE file page may be COWed away).
            if (usable && !entry.IsWritable && vma.IsCowMapping && (vma.Flags & VmFlags.Write) != 0 && MustUnshare(entry, huge))
                usable = false;
            if (!usable)
            {
                bool unshare = entry.Kind == PteKind.Present && !entry.IsProtNone && !entry.IsWritable && vma.IsCowMapping
                               && (vma.Flags & VmFlags.Write) != 0 && MustUnshare(entry, huge);
                var r = HandleVmaFault(vma, va, write || unshare || (entry.IsNone && vma.IsPrivateAnon && (vma.Flags & VmFlags.Write) != 0));
                if (r == FaultResult.Oom) return Errno.ENOMEM;
                if (r != FaultResult.Ok) return Errno.EFAULT;
                continue;
            }
            ulong pfn = huge ? entry.Pfn + ((va & (Page.PmdSize - 1)) >> Page.Shift) : entry.Pfn;
            // The pgmap lookup needs no struct page (a section table read); the struct page is
            // read only under the PTL below, once the entry is known to be unchanged.
            var cls = Machine.DeviceMemory?.Classify(pfn) ?? DevicePageClass.None;
            if (cls == DevicePageClass.P2PDma) return Errno.EFAULT;   // needs FOLL_PCI_P2PDMA
            // follow_page_pte: under the PTL, with the entry re-checked (it was read without it:
            // the folio may since be frozen by a THP split, freed, or its device memory
            // unplugged), try_grab_folio; otherwise walk again.
            ulong head = 0;
            if (!TryGrabMapped(va, huge, entry, ref head)) continue;
            if (cls == DevicePageClass.Coherent && longTerm)
            {
                Machine.PutPage(head);
                if (Machine.CoherentFolioMigration?.Invoke(Machine, head) != true) return Errno.EBUSY;
                continue;
            }
            if (!IsZeroPfn(head))
            {
                Interlocked.Increment(ref Frames.PinCount(head));
                // FOLL_TOUCH | FOLL_WRITE: the device will write it, so the folio is dirty (and no
                // longer a clean lazy-free candidate).
                if (write)
                {
                    Frames.SetFlags(head, PageFlags.Dirty);
                    Frames.ClearFlags(pfn, PageFlags.LazyFree);
                }
            }
            pinnedPfn = pfn;
            return Errno.Ok;
        }
        return Errno.EBUSY;
    }

    private bool MustUnshare(Pte entry, bool huge)
    {
        ulong pfn = entry.Pfn;
        if (IsZeroPfn(pfn)) return true;
        ulong head = Frames.FolioHead(pfn);
        if ((Frames.Flags(head) & PageFlags.Anon) == 0) return false;
        return (Frames.Flags(huge ? head : pfn) & PageFlags.AnonExclusive) == 0;
    }

    internal static void Unpin(Machine machine, ulong pfn)
    {
        ulong head = machine.Frames.FolioHead(pfn);
        if ((machine.Frames.Flags(head) & PageFlags.Zero) != 0) return;
        if (Interlocked.Decrement(ref machine.Frames.PinCount(head)) < 0)
            throw new KernelBugException("PAGE-R01", $"unpin of pfn 0x{pfn:x} that is not pinned");
        machine.PutPage(head);
    }
}
