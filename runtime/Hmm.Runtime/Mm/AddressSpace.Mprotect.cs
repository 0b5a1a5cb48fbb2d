using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class AddressSpace
{
    /// <summary>
    /// mprotect. EINVAL for a misaligned address or unknown bits; a zero length succeeds; ENOMEM
    /// when the range overflows or is not entirely mapped; EACCES when asking for write on a VMA
    /// without VM_MAYWRITE.
    /// </summary>
    /// <remarks>
    /// Differs from Linux on purpose in one way: Linux applies the change to the VMAs before a
    /// hole and then returns ENOMEM; the simulator checks for holes first and changes nothing
    /// (ARCHITECTURE §4: nothing half-applied).
    /// </remarks>
    internal void Mprotect(ulong addr, ulong length, Prot prot)
    {
        if (!Page.IsAligned(addr)) throw Fail(Errno.EINVAL, $"address 0x{addr:x} is not page aligned");
        if ((prot & ~(Prot.Read | Prot.Write | Prot.Exec)) != 0) throw Fail(Errno.EINVAL, "unknown PROT_* bits");
        if (length == 0) return;
        if (!Page.TryAlignUp(length, out ulong len) || addr + len <= addr) throw Fail(Errno.ENOMEM, "the range overflows");
        ulong end = addr + len;
        MmapLock.WriteLock();
        try
        {
            CheckAlive();
            if (!VmaTree.Covers(addr, end)) throw Fail(Errno.ENOMEM, $"[0x{addr:x}, 0x{end:x}) is not entirely mapped");
            foreach (var vma in VmaTree.Overlapping(addr, end))
            {
                if ((prot & Prot.Write) != 0 && (vma.Flags & VmFlags.MayWrite) == 0)
                    throw Fail(Errno.EACCES, $"{vma} may not be made writable");
            }
            CheckHugeTlbBoundaries(addr, end);
            var wanted = ((prot & Prot.Read) != 0 ? VmFlags.Read : 0) | ((prot & Prot.Write) != 0 ? VmFlags.Write : 0) | ((prot & Prot.Exec) != 0 ? VmFlags.Exec : 0);
            foreach (var vma in IsolateRange(addr, end))
            {
                var newFlags = (vma.Flags & ~VmFlags.AccessMask) | wanted;
                if (newFlags == vma.Flags) continue;   // mprotect_fixup: nothing to do, no event
                Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.MprotectFixup, this, vma.Start);
                ChangeProtection(vma, newFlags);
                vma.Flags = newFlags;
            }
            for (int i = VmaTree.IndexAfter(addr); i < VmaTree.Count && VmaTree[i].Start < end; i++)
                i = VmaTree.IndexAfter(MergeAround(VmaTree[i]).Start);
        }
        finally { MmapLock.WriteUnlock(); }
    }

    /// <summary>
    /// change_protection over one VMA: raises PROTECTION_VMA lazily, from the first non-empty PUD
    /// of the range to its end — a range with no page tables raises nothing (reference D,
    /// "mprotect"). Each present entry takes the new vm_page_prot (pte_modify): PROT_NONE makes it
    /// protnone, and it keeps write only where the new protection grants write (a shared mapping
    /// without write notifications). With MM_CP_TRY_CHANGE_WRITABLE (a private writable mapping,
    /// or a shared one that wants write notifications) an entry is also made writable at once
    /// where no write fault is needed (can_change_pte_writable): an exclusive anonymous page in a
    /// private mapping, a dirty page in a shared one — never the zero page, a page-cache page or
    /// a page shared after fork, which must still copy or notify on write. Writable
    /// device-private, migration and device-exclusive entries always become read-only
    /// (reference D, H.7).
    /// </summary>
    private void ChangeProtection(Vma vma, VmFlags newFlags)
    {
        ulong first = FirstPopulatedPud(vma.Start, vma.End);
        if (first == ulong.MaxValue) return;
        ulong start = Math.Max(first, vma.Start);
        var hook = InvalidateStart(NotifyEvent.ProtectionVma, start, vma.End);
        var prot = new NewProtection(vma, newFlags);
        for (ulong va = start; va < vma.End;)
        {
            ulong pmdEnd = Math.Min((va + Page.PmdSize) & ~(Page.PmdSize - 1), vma.End);
            ulong[]? pmdTable = Tables.PmdTable(va, allocate: false);
            if (pmdTable != null)
            {
                // change_pte_range / change_huge_pmd: under the page-table lock, so a concurrent
                // rmap walk (remove_migration_ptes from another mm) never has its entry
                // overwritten by a stale read-modify-write here.
                PageTableLock.Lock();
                try
                {
                    ref ulong pmd = ref pmdTable[PageTables.PmdIndex(va)];
                    if (pmd != 0 && !PageTables.IsTable(pmd)) Volatile.Write(ref pmd, Reprotect(pmd, prot, huge: true));
                    else if (pmd != 0)
                    {
                        ulong[] ptes = Tables.TableOf(pmd);
                        for (ulong a = va; a < pmdEnd; a += Page.Size)
                        {
                            ref ulong e = ref ptes[PageTables.PteIndex(a)];
                            if (e != 0) Volatile.Write(ref e, Reprotect(e, prot, huge: false));
                        }
                    }
                }
                finally { PageTableLock.Unlock(); }
            }
            va = pmdEnd;
        }
        InvalidateEnd(hook, NotifyEvent.ProtectionVma, start, vma.End);
    }

    /// <summary>The new vm_page_prot of a VMA under mprotect, and whether MM_CP_TRY_CHANGE_WRITABLE applies.</summary>
    private readonly struct NewProtection
    {
        public NewProtection(Vma vma, VmFlags newFlags)
        {
            bool write = (newFlags & VmFlags.Write) != 0;
            bool shared = (newFlags & VmFlags.Shared) != 0;
            None = (newFlags & (VmFlags.Read | VmFlags.Write | VmFlags.Exec)) == 0;
            bool writeNotify = shared && write && vma.File is { IsInternal: false };
            Writable = shared && write && !writeNotify;
            // vma_wants_manual_pte_write_upgrade (hugetlb_change_protection has no such step).
            TryChangeWritable = write && !vma.IsHugeTlb && (shared ? writeNotify : true);
            Shared = shared;
        }

        public bool None { get; }
        public bool Writable { get; }
        public bool TryChangeWritable { get; }
        public bool Shared { get; }
    }

    private ulong Reprotect(ulong raw, in NewProtection prot, bool huge)
    {
        var pte = new Pte(raw);
        switch (pte.Kind)
        {
            case PteKind.Present:
                if (prot.None) return (raw | Pte.ProtNoneBit) & ~Pte.WriteBit;
                raw &= ~Pte.ProtNoneBit;
                if (prot.Writable) return raw | Pte.WriteBit;
                raw &= ~Pte.WriteBit;
                return prot.TryChangeWritable && CanChangeWritable(pte, prot.Shared, huge) ? raw | Pte.WriteBit : raw;
            case PteKind.DevicePrivate:
            case PteKind.Migration:
            case PteKind.DeviceExclusive:
                return raw & ~Pte.WriteBit;
            default:
                return raw;
        }
    }

    /// <summary>
    /// can_change_pte_writable / can_change_pmd_writable: whether an entry may be made writable
    /// without a write fault — in a private mapping only an exclusive anonymous page (the zero
    /// page, page-cache pages and pages shared after fork need the fault's copy), in a shared one
    /// only a dirty entry (a clean one still owes the file system its write notification).
    /// </summary>
    private bool CanChangeWritable(Pte pte, bool shared, bool huge)
    {
        if (shared) return pte.IsDirty && !IsZeroPfn(pte.Pfn);
        ulong pfn = pte.Pfn;
        if (IsZeroPfn(pfn)) return false;
        ulong head = Frames.FolioHead(pfn);
        if ((Frames.Flags(head) & PageFlags.Anon) == 0) return false;
        return (Frames.Flags(huge ? head : pfn) & PageFlags.AnonExclusive) != 0;
    }

    /// <summary>The start of the first PUD in [start, end) that has a table, or ulong.MaxValue.</summary>
    private ulong FirstPopulatedPud(ulong start, ulong end)
    {
        const ulong pudSize = 1UL << Page.PudShift;
        for (ulong va = start & ~(pudSize - 1); va < end; va += pudSize)
            if (Tables.PmdTable(va, allocate: false) != null) return va;
        return ulong.MaxValue;
    }
}
