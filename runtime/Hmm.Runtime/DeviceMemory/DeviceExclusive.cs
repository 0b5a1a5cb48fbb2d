using Hmm.Dsl;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.DeviceMemory;

/// <summary>
/// The page <see cref="DeviceExclusive.Make"/> returned: locked and referenced. The device's
/// atomic mapping is guaranteed only until it is disposed (folio_unlock + folio_put, EXC-R01).
/// </summary>
public readonly struct ExclusivePage : IDisposable
{
    private readonly Machine? _machine;
    private readonly ulong _head;

    internal ExclusivePage(Machine machine, ulong head, ulong pfn)
    {
        _machine = machine;
        _head = head;
        Pfn = pfn;
    }

    /// <summary>The system page the device may now access atomically.</summary>
    public ulong Pfn { get; }

    /// <summary>Unlocks and releases the page.</summary>
    [ReleasesReference("exclusive-folio", "this")]
    public void Dispose()
    {
        if (_machine == null) return;
        _machine.UnlockPage(_head);
        _machine.PutPage(_head);
    }
}

/// <summary>Simulates make_device_exclusive (reference A.10, B.8): device atomics on system memory.</summary>
public static class DeviceExclusive
{
    private const int MaxAttempts = 1000;

    /// <summary>
    /// make_device_exclusive: faults the page at <paramref name="address"/> in writable (splitting a
    /// THP, breaking COW, restoring another device's exclusive entry), then inside an EXCLUSIVE
    /// invalidation owned by <paramref name="owner"/> replaces its CPU entry with a
    /// device-exclusive entry. Any later CPU access restores the entry (CLEAR) and revokes the
    /// device's access. EFAULT for no VMA or a read-only one, EOPNOTSUPP for non-anonymous or
    /// hugetlb memory. Requires the mmap lock (EXC-R01); the caller filters its own EXCLUSIVE
    /// event (HMM-R20).
    /// </summary>
    [MayBlock]
    [RequiresShared("mm.MmapLock")]
    [AcquiresReference("exclusive-folio", "page", When = AcquiredWhen.ReturnsOk)]
    public static Errno Make(AddressSpace mm, ulong address, object? owner, out ExclusivePage page)
    {
        page = default;
        if (!mm.MmapLock.IsLocked) throw new KernelBugException("EXC-R01", "make_device_exclusive requires the mmap lock held for read");
        var machine = mm.Machine;
        ulong addr = Page.AlignDown(address);
        for (int attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var vma = mm.FindVma(addr);
            if (vma == null || (vma.Flags & VmFlags.Write) == 0) return Errno.EFAULT;
            if (vma.IsHugeTlb) return Errno.EOPNOTSUPP;
            var entry = mm.ReadEntry(addr, out bool huge);
            if (huge && entry.Kind == PteKind.Present) { mm.SplitHugePmdAt(vma, addr); continue; }   // FOLL_SPLIT_PMD
            if (entry.Kind != PteKind.Present || entry.IsProtNone || !entry.IsWritable || huge)
            {
                if (mm.HandleVmaFault(vma, addr, write: true) != FaultResult.Ok) return Errno.EFAULT;
                continue;
            }
            ulong pfn = entry.Pfn, head = 0;
            // GUP's follow_page_pte: the entry was read without the PTL, so the folio is looked at
            // and referenced only under it, with the entry unchanged (a THP split may have frozen
            // it, or it may be freed and its device memory unplugged); otherwise retry.
            if (!mm.TryGrabMapped(addr, huge: false, entry, ref head)) continue;
            if ((machine.Frames.Flags(head) & PageFlags.Anon) == 0 || machine.IsDevicePage(head))
            {
                machine.PutPage(head);
                return Errno.EOPNOTSUPP;
            }
            machine.LockPage(head);
            var hook = mm.InvalidateStart(NotifyEvent.Exclusive, addr, addr + Page.Size, owner);
            bool done = false;
            mm.PageTableLock.Lock();
            try
            {
                ref ulong slot = ref mm.SlotFor(addr, huge: false);
                if (!System.Runtime.CompilerServices.Unsafe.IsNullRef(ref slot) && slot == entry.Raw)
                {
                    if (entry.IsDirty) machine.Frames.SetFlags(head, PageFlags.Dirty);
                    Volatile.Write(ref slot, Pte.NonPresent(PteKind.DeviceExclusive, pfn, writable: true).Raw);
                    done = true;
                }
            }
            finally { mm.PageTableLock.Unlock(); }
            mm.InvalidateEnd(hook, NotifyEvent.Exclusive, addr, addr + Page.Size, owner);
            if (done)
            {
                page = new ExclusivePage(machine, head, pfn);
                return Errno.Ok;
            }
            machine.UnlockPage(head);
            machine.PutPage(head);
        }
        return Errno.EBUSY;
    }
}
