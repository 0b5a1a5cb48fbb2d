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
    /// "mprotect"). Present entries lose write when the new flags lack it (write is never added
    /// eagerly: the next write fault upgrades), PROT_NONE makes them protnone; writable
    /// device-private entries are always downgraded (reference D, H.7).
    /// </summary>
    private void ChangeProtection(Vma vma, VmFlags newFlags)
    {
        ulong first = FirstPopulatedPud(vma.Start, vma.End);
        if (first == ulong.MaxValue) return;
        ulong start = Math.Max(first, vma.Start);
        var hook = InvalidateStart(NotifyEvent.ProtectionVma, start, vma.End);
        bool write = (newFlags & VmFlags.Write) != 0;
        bool none = (newFlags & (VmFlags.Read | VmFlags.Write | VmFlags.Exec)) == 0;
        for (ulong va = start; va < vma.End;)
        {
            ulong pmdEnd = Math.Min((va + Page.PmdSize) & ~(Page.PmdSize - 1), vma.End);
            ulong[]? pmdTable = Tables.PmdTable(va, allocate: false);
            if (pmdTable != null)
            {
                ref ulong pmd = ref pmdTable[PageTables.PmdIndex(va)];
                if (pmd != 0 && !PageTables.IsTable(pmd)) pmd = Reprotect(pmd, write, none);
                else if (pmd != 0)
                {
                    ulong[] ptes = Tables.TableOf(pmd);
                    for (ulong a = va; a < pmdEnd; a += Page.Size)
                    {
                        ref ulong e = ref ptes[PageTables.PteIndex(a)];
                        if (e != 0) e = Reprotect(e, write, none);
                    }
                }
            }
            va = pmdEnd;
        }
        InvalidateEnd(hook, NotifyEvent.ProtectionVma, start, vma.End);
    }

    private static ulong Reprotect(ulong raw, bool write, bool none)
    {
        var pte = new Pte(raw);
        switch (pte.Kind)
        {
            case PteKind.Present:
                if (none) return (raw | Pte.ProtNoneBit) & ~Pte.WriteBit;
                raw &= ~Pte.ProtNoneBit;
                return write ? raw : raw & ~Pte.WriteBit;
            case PteKind.DevicePrivate:
            case PteKind.Migration:
                return raw & ~Pte.WriteBit;
            default:
                return raw;
        }
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
