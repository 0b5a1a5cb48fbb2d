using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class AddressSpace
{
    /// <summary>
    /// mremap. Shrinking unmaps the tail; growing extends in place when the space after the VMA is
    /// free, otherwise moves (MayMove) or fails with ENOMEM; Fixed moves to <paramref name="newAddr"/>
    /// replacing what is there; DontUnmap moves the pages and leaves the old range mapped but
    /// empty. Errors as Linux: EINVAL for bad flags (Fixed or DontUnmap without MayMove,
    /// DontUnmap with a size change), misaligned addresses, zero new length or overlapping
    /// ranges; EFAULT when the old range is not inside one VMA.
    /// </summary>
    /// <remarks>hugetlb VMAs are not remappable here (EINVAL); Linux allows a narrow case.</remarks>
    internal ulong Mremap(ulong oldAddr, ulong oldLength, ulong newLength, MremapFlags flags, ulong newAddr)
    {
        if ((flags & ~(MremapFlags.MayMove | MremapFlags.Fixed | MremapFlags.DontUnmap)) != 0) throw Fail(Errno.EINVAL, "unknown MREMAP_* flags");
        bool mayMove = (flags & MremapFlags.MayMove) != 0, fixedAddr = (flags & MremapFlags.Fixed) != 0, dontUnmap = (flags & MremapFlags.DontUnmap) != 0;
        if ((fixedAddr || dontUnmap) && !mayMove) throw Fail(Errno.EINVAL, "MREMAP_FIXED and MREMAP_DONTUNMAP need MREMAP_MAYMOVE");
        if (!Page.IsAligned(oldAddr)) throw Fail(Errno.EINVAL, $"old address 0x{oldAddr:x} is not page aligned");
        if (!Page.TryAlignUp(oldLength, out ulong oldLen) || !Page.TryAlignUp(newLength, out ulong newLen)) throw Fail(Errno.EINVAL, "length overflows");
        if (newLen == 0) throw Fail(Errno.EINVAL, "zero new length");
        if (oldLen == 0) throw Fail(Errno.EINVAL, "zero old length (duplicating shared mappings is not supported)");
        if (dontUnmap && oldLen != newLen) throw Fail(Errno.EINVAL, "MREMAP_DONTUNMAP cannot change the size");
        if (oldAddr + oldLen < oldAddr || oldAddr + oldLen > TaskSize) throw Fail(Errno.EINVAL, "old range overflows");
        if (fixedAddr)
        {
            if (!Page.IsAligned(newAddr)) throw Fail(Errno.EINVAL, $"new address 0x{newAddr:x} is not page aligned");
            if (newAddr + newLen < newAddr || newAddr + newLen > TaskSize) throw Fail(Errno.EINVAL, "new range overflows");
            if (newAddr < oldAddr + oldLen && oldAddr < newAddr + newLen) throw Fail(Errno.EINVAL, "old and new ranges overlap");
            if (newAddr < MmapMinAddr) throw Fail(Errno.EPERM, "new address below mmap_min_addr");
        }

        MmapLock.WriteLock();
        try
        {
            CheckAlive();
            var vma = VmaTree.Lookup(oldAddr);
            if (vma == null || oldAddr + oldLen > vma.End) throw Fail(Errno.EFAULT, $"[0x{oldAddr:x}, +0x{oldLen:x}) is not inside one VMA");
            if (vma.IsHugeTlb) throw Fail(Errno.EINVAL, "hugetlb mappings cannot be remapped");
            if (newLen > oldLen && (vma.Flags & VmFlags.DontExpand) != 0) throw Fail(Errno.EFAULT, "VM_DONTEXPAND mapping cannot grow");

            if (fixedAddr)
            {
                DoMunmap(newAddr, newAddr + newLen);
                if (oldLen > newLen) { DoMunmap(oldAddr + newLen, oldAddr + oldLen); oldLen = newLen; }
                return MoveVma(VmaTree.Lookup(oldAddr)!, oldAddr, oldLen, newAddr, newLen, dontUnmap);
            }
            if (newLen <= oldLen && !dontUnmap)
            {
                if (newLen < oldLen) DoMunmap(oldAddr + newLen, oldAddr + oldLen);
                return oldAddr;
            }
            if (!dontUnmap && oldAddr + oldLen == vma.End && oldAddr + newLen <= TaskSize && !VmaTree.Intersects(vma.End, oldAddr + newLen))
            {
                // vma_expand: grow in place.
                ExpandVma(vma, oldAddr + newLen);
                MergeAround(vma);
                return oldAddr;
            }
            if (!mayMove) throw Fail(Errno.ENOMEM, "cannot grow in place and MREMAP_MAYMOVE was not given");
            ulong align = vma.File == null && newLen >= Page.PmdSize ? Page.PmdSize : Page.Size;
            ulong target = VmaTree.FindGapTopDown(newLen, align, MmapMinAddr, MmapBase);
            if (target == 0) throw Fail(Errno.ENOMEM, $"no free range of {newLen} bytes");
            return MoveVma(vma, oldAddr, oldLen, target, newLen, dontUnmap);
        }
        finally { MmapLock.WriteUnlock(); }
    }

    /// <summary>
    /// move_vma: a new VMA at <paramref name="newAddr"/> takes over the pages of
    /// [<paramref name="oldAddr"/>, +<paramref name="oldLen"/>): their page-table entries move as-is
    /// (device entries included) inside one UNMAP of the old range; then the old range is unmapped
    /// (a second UNMAP) unless <paramref name="dontUnmap"/> (reference D, "mremap").
    /// </summary>
    private ulong MoveVma(Vma vma, ulong oldAddr, ulong oldLen, ulong newAddr, ulong newLen, bool dontUnmap)
    {
        var pieces = IsolateRange(oldAddr, oldAddr + oldLen);
        var old = pieces[0];
        var moved = new Vma(this, newAddr, newAddr + newLen, old.Flags, old.File, old.PgOff, old.Anon) { Ops = old.Ops };
        LinkVma(moved);
        Interleaving.TestHooks.Fire(Interleaving.TestHookPoint.MremapVmaLinked, this, oldAddr);
        MovePageTables(moved, oldAddr, newAddr, oldLen);
        if (!dontUnmap) DoMunmap(oldAddr, oldAddr + oldLen);
        else
        {
            // The old range keeps its VMA, empty; its pages now belong to the moved VMA's lineage.
            DetachAnon(old);
            old.Anon = null;
        }
        MergeAround(moved);
        return newAddr;
    }

    private void MovePageTables(Vma newVma, ulong oldAddr, ulong newAddr, ulong len)
    {
        var hook = InvalidateStart(NotifyEvent.Unmap, oldAddr, oldAddr + len);
        // take_rmap_locks: an rmap walk sees every entry either still at its old address or
        // already at its new one — never in neither VMA (a remove_migration_ptes that missed one
        // would leave a migration entry behind for good).
        var anon = newVma.Anon;
        anon?.Rwsem.WriteLock();
        try { MovePageTablesLocked(newVma, oldAddr, newAddr, len); }
        finally { anon?.Rwsem.WriteUnlock(); }
        InvalidateEnd(hook, NotifyEvent.Unmap, oldAddr, oldAddr + len);
    }

    private void MovePageTablesLocked(Vma newVma, ulong oldAddr, ulong newAddr, ulong len)
    {
        for (ulong off = 0; off < len;)
        {
            ulong src = oldAddr + off, dst = newAddr + off;
            ulong[]? srcPmdTable = Tables.PmdTable(src, allocate: false);
            if (srcPmdTable == null) { off += Page.Size; continue; }
            ref ulong srcPmd = ref srcPmdTable[PageTables.PmdIndex(src)];
            if (srcPmd != 0 && !PageTables.IsTable(srcPmd))
            {
                if (((src | dst) & (Page.PmdSize - 1)) == 0 && len - off >= Page.PmdSize)
                {
                    // move_huge_pmd: the whole leaf moves.
                    ulong[] dstPmdTable = Tables.PmdTable(dst, allocate: true)!;
                    dstPmdTable[PageTables.PmdIndex(dst)] = srcPmd;
                    Volatile.Write(ref srcPmd, 0);
                    off += Page.PmdSize;
                    continue;
                }
                SplitHugePmd(newVma, src & ~(Page.PmdSize - 1), notify: true);
            }
            if (srcPmd == 0) { off = Math.Min(((src + Page.PmdSize) & ~(Page.PmdSize - 1)) - oldAddr, len); continue; }
            ulong[] srcPtes = Tables.TableOf(srcPmd);
            ref ulong from = ref srcPtes[PageTables.PteIndex(src)];
            if (from != 0)
            {
                ulong[] dstPmd = Tables.PmdTable(dst, allocate: true)!;
                ulong[] dstPtes = Tables.EnsurePteTable(ref dstPmd[PageTables.PmdIndex(dst)]);
                dstPtes[PageTables.PteIndex(dst)] = from;
                Volatile.Write(ref from, 0);
            }
            off += Page.Size;
        }
    }
}
