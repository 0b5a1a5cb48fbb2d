using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

public sealed partial class AddressSpace
{
    /// <summary>
    /// do_mmap. Checks arguments as Linux does (EINVAL for a zero length, misaligned offset or
    /// MAP_FIXED address, or neither/both of Shared and Private; ENOMEM when the rounded length
    /// overflows or no gap fits; EPERM below mmap_min_addr; EEXIST for an occupied
    /// MAP_FIXED_NOREPLACE range; EBADF for a file mapping without a file). A MAP_FIXED mapping
    /// over existing ones unmaps them first (UNMAP event, reference D row 1). Everything is
    /// checked before anything changes.
    /// </summary>
    internal ulong Mmap(ulong addr, ulong length, Prot prot, MapFlags flags, SimFile? file, ulong offset)
    {
        if ((prot & ~(Prot.Read | Prot.Write | Prot.Exec)) != 0) throw Fail(Errno.EINVAL, "unknown PROT_* bits");
        var kind = flags & (MapFlags.Shared | MapFlags.Private);
        // Both bits together are MAP_SHARED_VALIDATE (0x03): a shared mapping whose flags the
        // kernel validates; every flag the simulator knows is valid, so it is plain MAP_SHARED.
        if (kind == (MapFlags.Shared | MapFlags.Private)) kind = MapFlags.Shared;
        if (kind == MapFlags.None) throw Fail(Errno.EINVAL, "one of MAP_SHARED, MAP_PRIVATE or MAP_SHARED_VALIDATE is required");
        bool anonymous = (flags & MapFlags.Anonymous) != 0;
        if (!anonymous && file == null) throw Fail(Errno.EBADF, "a file mapping needs a file");
        if (anonymous) { file = null; offset = 0; }
        bool hugeTlb = (flags & MapFlags.HugeTlb) != 0;
        if (hugeTlb && file != null) throw Fail(Errno.EINVAL, "MAP_HUGETLB needs an anonymous mapping");
        if (length == 0) throw Fail(Errno.EINVAL, "zero length");
        if (!Page.IsAligned(offset)) throw Fail(Errno.EINVAL, $"offset {offset} is not page aligned");
        ulong align = hugeTlb ? Page.PmdSize : Page.Size;
        ulong len = (length + align - 1) & ~(align - 1);
        if (len < length || len == 0 || len > TaskSize) throw Fail(Errno.ENOMEM, $"length {length} overflows when rounded");
        if ((offset >> Page.Shift) + (len >> Page.Shift) < (offset >> Page.Shift)) throw Fail(Errno.EOVERFLOW, "offset + length overflows");
        bool fixedAddr = (flags & (MapFlags.Fixed | MapFlags.FixedNoReplace)) != 0;
        if (fixedAddr)
        {
            if ((addr & (align - 1)) != 0) throw Fail(Errno.EINVAL, $"MAP_FIXED address 0x{addr:x} is not {(hugeTlb ? "2 MiB" : "page")} aligned");
            if (addr < MmapMinAddr) throw Fail(Errno.EPERM, $"address 0x{addr:x} is below mmap_min_addr");
            if (addr + len > TaskSize || addr + len < addr) throw Fail(Errno.ENOMEM, "the range ends beyond TASK_SIZE");
        }
        if (hugeTlb && !Machine.HugeTlbAvailable((int)(len >> Page.PmdShift)))
            throw Fail(Errno.ENOMEM, $"hugetlb pool has {Machine.HugeTlbFreePages} free 2 MiB pages, {len >> Page.PmdShift} needed");

        MmapLock.WriteLock();
        try
        {
            CheckAlive();
            if (fixedAddr)
            {
                if ((flags & MapFlags.FixedNoReplace) != 0 && VmaTree.Intersects(addr, addr + len))
                    throw Fail(Errno.EEXIST, $"[0x{addr:x}, 0x{addr + len:x}) is already mapped");
                if (VmaTree.Intersects(addr, addr + len))
                {
                    CheckHugeTlbBoundaries(addr, addr + len);
                    DoMunmap(addr, addr + len);
                }
            }
            else
            {
                ulong gapAlign = hugeTlb || (file == null && len >= Page.PmdSize) ? Page.PmdSize : Page.Size;
                if (addr != 0 && Page.IsAligned(addr) && addr >= MmapMinAddr && addr + len <= TaskSize && addr + len > addr
                    && (addr & (gapAlign - 1)) == 0 && !VmaTree.Intersects(addr, addr + len))
                { /* the hint is free: use it */ }
                else
                {
                    addr = VmaTree.FindGapTopDown(len, gapAlign, MmapMinAddr, MmapBase);
                    if (addr == 0) throw Fail(Errno.ENOMEM, $"no free range of {len} bytes");
                }
            }

            var vmFlags = VmFlags.MayRead | VmFlags.MayWrite | VmFlags.MayExec
                | ((prot & Prot.Read) != 0 ? VmFlags.Read : 0)
                | ((prot & Prot.Write) != 0 ? VmFlags.Write : 0)
                | ((prot & Prot.Exec) != 0 ? VmFlags.Exec : 0)
                | (kind == MapFlags.Shared ? VmFlags.Shared | VmFlags.MayShare : 0)
                | (hugeTlb ? VmFlags.HugeTlb : 0);
            ulong pgoff;
            if (file != null) pgoff = offset >> Page.Shift;
            else if (kind == MapFlags.Shared)
            {
                // shmem_zero_setup: a shared anonymous mapping is backed by an unnamed shmem object.
                file = Machine.RegisterFile(len, internalObject: true, order: hugeTlb ? Page.PmdOrder : 0, null);
                pgoff = 0;
            }
            else pgoff = addr >> Page.Shift;

            var vma = new Vma(this, addr, addr + len, vmFlags, file, pgoff, null);
            LinkVma(vma);
            MergeAround(vma);
            if ((flags & MapFlags.Populate) != 0)
            {
                MmapLock.DowngradeWrite();
                try { Populate(addr, addr + len); }
                finally { MmapLock.ReadUnlock(); }
                return addr;
            }
        }
        catch when (ReleaseWriteOnThrow()) { throw; }
        MmapLock.WriteUnlock();
        return addr;
    }

    // Exception filter used to release the write lock on every failure path without a
    // second try/finally around the populate branch (which downgrades and releases itself).
    private bool ReleaseWriteOnThrow()
    {
        if (MmapLock.IsWriteHeldByCurrentThread) MmapLock.WriteUnlock();
        return false;
    }

    /// <summary>
    /// munmap. EINVAL for a misaligned address, a zero length or a range beyond TASK_SIZE, and for
    /// cutting a hugetlb VMA off a 2 MiB boundary. Unmapping a range with nothing mapped succeeds
    /// and changes nothing.
    /// </summary>
    internal void Munmap(ulong addr, ulong length)
    {
        if (!Page.IsAligned(addr)) throw Fail(Errno.EINVAL, $"address 0x{addr:x} is not page aligned");
        if (length == 0) throw Fail(Errno.EINVAL, "zero length");
        if (!Page.TryAlignUp(length, out ulong len) || addr + len < addr || addr + len > TaskSize)
            throw Fail(Errno.EINVAL, "the range overflows or ends beyond TASK_SIZE");
        MmapLock.WriteLock();
        try
        {
            CheckAlive();
            CheckHugeTlbBoundaries(addr, addr + len);
            DoMunmap(addr, addr + len);
        }
        finally { MmapLock.WriteUnlock(); }
    }

    private void CheckHugeTlbBoundaries(ulong start, ulong end)
    {
        foreach (var vma in VmaTree.Overlapping(start, end))
        {
            if (!vma.IsHugeTlb) continue;
            if ((start > vma.Start && (start & (Page.PmdSize - 1)) != 0) || (end < vma.End && (end & (Page.PmdSize - 1)) != 0))
                throw Fail(Errno.EINVAL, $"[0x{start:x}, 0x{end:x}) cuts hugetlb VMA {vma} off a 2 MiB boundary");
        }
    }

    /// <summary>
    /// do_vmi_munmap with the mmap lock held for write: splits the VMAs at the boundaries (a THP
    /// straddling one is split first, raising CLEAR), raises one UNMAP over [start, end), zaps
    /// the pages, removes the VMAs and frees the page tables left with nothing to map.
    /// </summary>
    internal void DoMunmap(ulong start, ulong end)
    {
        if (!VmaTree.Intersects(start, end)) return;
        var vmas = IsolateRange(start, end);
        var hook = InvalidateStart(NotifyEvent.Unmap, start, end);
        foreach (var vma in vmas) ZapRange(vma, vma.Start, vma.End);
        InvalidateEnd(hook, NotifyEvent.Unmap, start, end);
        foreach (var vma in vmas) UnlinkVma(vma);
        FreeGapTables(start, end);
    }

    /// <summary>free_pgtables over the hole around [start, end).</summary>
    internal void FreeGapTables(ulong start, ulong end)
    {
        int i = VmaTree.IndexAfter(start);
        ulong floor = i > 0 ? VmaTree[i - 1].End : 0;
        ulong ceiling = i < VmaTree.Count ? VmaTree[i].Start : TaskSize + Page.Size;
        Tables.FreeRange(floor, ceiling);
    }

    /// <summary>
    /// mmap of a device file: a special VMA (VM_MIXEDMAP | VM_DONTEXPAND) whose driver
    /// <paramref name="ops"/> may insert pages — shared (VM_SHARED | VM_MAYSHARE) for MAP_SHARED,
    /// private for MAP_PRIVATE, in which case the inserted pages are mapped copy-on-write (see
    /// <see cref="Vma.PageProtWritable"/>). Same argument checks as <see cref="Mmap"/>; flags other
    /// than Shared, Private, Fixed and FixedNoReplace are EINVAL (the simulator does not populate
    /// or back device mappings otherwise).
    /// </summary>
    internal ulong MmapDevice(ulong addr, ulong length, Prot prot, MapFlags mapFlags, IVmOperations ops)
    {
        if ((prot & ~(Prot.Read | Prot.Write | Prot.Exec)) != 0) throw Fail(Errno.EINVAL, "unknown PROT_* bits");
        if ((mapFlags & ~(MapFlags.Shared | MapFlags.Private | MapFlags.Fixed | MapFlags.FixedNoReplace)) != 0)
            throw Fail(Errno.EINVAL, $"{mapFlags}: a device-file mapping takes only Shared/Private and Fixed/FixedNoReplace");
        var kind = mapFlags & (MapFlags.Shared | MapFlags.Private);
        if (kind == MapFlags.None) throw Fail(Errno.EINVAL, "one of MAP_SHARED, MAP_PRIVATE or MAP_SHARED_VALIDATE is required");
        bool shared = kind != MapFlags.Private;
        bool fixedAddr = (mapFlags & (MapFlags.Fixed | MapFlags.FixedNoReplace)) != 0;
        if (length == 0) throw Fail(Errno.EINVAL, "zero length");
        if (!Page.TryAlignUp(length, out ulong len) || len > TaskSize) throw Fail(Errno.ENOMEM, $"length {length} overflows when rounded");
        if (fixedAddr && (!Page.IsAligned(addr) || addr < MmapMinAddr || addr + len > TaskSize || addr + len < addr))
            throw Fail(Errno.EINVAL, $"bad MAP_FIXED address 0x{addr:x}");
        MmapLock.WriteLock();
        try
        {
            CheckAlive();
            if (fixedAddr)
            {
                if ((mapFlags & MapFlags.FixedNoReplace) != 0 && VmaTree.Intersects(addr, addr + len))
                    throw Fail(Errno.EEXIST, $"[0x{addr:x}, 0x{addr + len:x}) is already mapped");
                DoMunmap(addr, addr + len);
            }
            else
            {
                addr = VmaTree.FindGapTopDown(len, Page.Size, MmapMinAddr, MmapBase);
                if (addr == 0) throw Fail(Errno.ENOMEM, $"no free range of {len} bytes");
            }
            var flags = VmFlags.MayRead | VmFlags.MayWrite | VmFlags.MixedMap | VmFlags.DontExpand
                | (shared ? VmFlags.Shared | VmFlags.MayShare : 0)
                | ((prot & Prot.Read) != 0 ? VmFlags.Read : 0) | ((prot & Prot.Write) != 0 ? VmFlags.Write : 0) | ((prot & Prot.Exec) != 0 ? VmFlags.Exec : 0);
            var vma = new Vma(this, addr, addr + len, flags, null, addr >> Page.Shift, null) { Ops = ops };
            LinkVma(vma);
            var e = ops.Mmap(vma);
            if (e != Errno.Ok)
            {
                var hook = InvalidateStart(NotifyEvent.Unmap, vma.Start, vma.End);
                ZapRange(vma, vma.Start, vma.End);
                InvalidateEnd(hook, NotifyEvent.Unmap, vma.Start, vma.End);
                VmaTree.Remove(vma);
                FreeGapTables(vma.Start, vma.End);
                throw Fail(e, "the driver's mmap failed");
            }
            return addr;
        }
        finally { MmapLock.WriteUnlock(); }
    }

    /// <summary>
    /// vm_insert_page into a device-file VMA: the PTE comes from vma->vm_page_prot (insert_page),
    /// so it is writable only in a shared writable mapping; a private one maps the driver's page
    /// copy-on-write and a write fault copies it (do_wp_page → wp_page_copy).
    /// </summary>
    internal Errno InsertDevicePage(Vma vma, ulong address, ulong pfn)
    {
        AssertWriteLocked("vm_insert_page");
        if (vma.Ops == null || (vma.Flags & VmFlags.MixedMap) == 0 || !Page.IsAligned(address) || address < vma.Start || address >= vma.End) return Errno.EINVAL;
        if (!Frames.IsOnline(pfn) || Frames.RefCount(Frames.FolioHead(pfn)) == 0) return Errno.EINVAL;
        ulong[] pmdTable = Tables.PmdTable(address, allocate: true)!;
        ulong[] ptes = Tables.EnsurePteTable(ref pmdTable[PageTables.PmdIndex(address)]);
        ref ulong slot = ref ptes[PageTables.PteIndex(address)];
        if (slot != 0) return Errno.EBUSY;
        ulong head = Frames.FolioHead(pfn);
        Frames.Flags(head) |= Memory.PageFlags.Kernel;
        Interlocked.Increment(ref Frames.MapCount(pfn));
        Machine.GetPage(head);
        Interlocked.Increment(ref _rssFile);
        Volatile.Write(ref slot, vma.ProtectPte(Pte.Present(pfn, writable: vma.PageProtWritable)).Raw);
        return Errno.Ok;
    }

    /// <summary>zap_vma_ptes over a device-file VMA (see <see cref="Vma.ZapPtes"/>).</summary>
    internal Errno ZapVmaPtes(Vma vma, ulong address, ulong size)
    {
        if (vma.Ops == null || (vma.Flags & VmFlags.MixedMap) == 0) return Errno.EINVAL;
        if (size == 0 || !Page.IsAligned(address) || !Page.IsAligned(size) || address + size < address) return Errno.EINVAL;
        bool take = !MmapLock.IsWriteHeldByCurrentThread;
        if (take && MmapLock.IsReadHeldByCurrentThread)
            throw new KernelBugException("MM-R04", $"zap_vma_ptes on mm {Id} with the mmap lock held only for read");
        if (take) MmapLock.WriteLock();
        try
        {
            ulong end = address + size;
            if (VmaTree.Lookup(vma.Start) != vma || address < vma.Start || end > vma.End) return Errno.EINVAL;
            var hook = InvalidateStart(NotifyEvent.Clear, address, end);
            ZapRange(vma, address, end);
            InvalidateEnd(hook, NotifyEvent.Clear, address, end);
            return Errno.Ok;
        }
        finally { if (take) MmapLock.WriteUnlock(); }
    }

    internal static ErrnoException Fail(Errno errno, string message) => new(errno, message);
}
