using Hmm.Runtime.Memory;

namespace Hmm.Runtime.Mm;

/// <summary>
/// Simulates <c>struct vm_area_struct</c>: a contiguous range [<see cref="Start"/>, <see cref="End"/>)
/// of one address space with uniform flags and backing. A snapshot of the VMA list is
/// available from <see cref="AddressSpace.Vmas"/>; the objects themselves are owned by the mm.
/// </summary>
public sealed class Vma
{
    internal Vma(AddressSpace mm, ulong start, ulong end, VmFlags flags, SimFile? file, ulong pgoff, AnonVma? anon)
    {
        Mm = mm;
        Start = start;
        End = end;
        Flags = flags;
        File = file;
        PgOff = pgoff;
        Anon = anon;
    }

    /// <summary>The address space the VMA belongs to.</summary>
    public AddressSpace Mm { get; }

    /// <summary>vm_start.</summary>
    public ulong Start { get; internal set; }

    /// <summary>vm_end (exclusive).</summary>
    public ulong End { get; internal set; }

    /// <summary>vm_flags.</summary>
    public VmFlags Flags { get; internal set; }

    /// <summary>vm_file: the mapped file, or the shmem object of a shared anonymous mapping; null for private anonymous memory.</summary>
    public SimFile? File { get; internal set; }

    /// <summary>vm_pgoff: for file mappings the file page at <see cref="Start"/>; for anonymous ones the linear page index rmap uses.</summary>
    public ulong PgOff { get; internal set; }

    /// <summary>vm_ops of a special mapping (e.g. a device file), or null.</summary>
    public object? Ops { get; internal set; }

    /// <summary>
    /// vm_insert_page: maps the driver's page <paramref name="pfn"/> (a zeroed kernel page it
    /// allocated, see <see cref="Migration.SystemPages"/>) at <paramref name="address"/> of this
    /// device-file VMA with the VMA's protection: writable in a shared writable mapping, read-only
    /// (copy-on-write) in a private one, protnone without access rights. Only from <see cref="IVmOperations.Mmap"/> (the mmap
    /// lock is held for write). EINVAL outside the VMA or for a non-device VMA, EBUSY if already mapped.
    /// </summary>
    public Errno InsertPage(ulong address, ulong pfn) => Mm.InsertDevicePage(this, address, pfn);

    /// <summary>
    /// zap_vma_ptes: a driver removes the CPU entries of [<paramref name="address"/>,
    /// address + <paramref name="size"/>) of its own special (device-file) VMA, raising a
    /// <see cref="NotifyEvent.Clear"/> invalidation over the range first — also when nothing is
    /// CPU-mapped there, so every subscribed importer (mmu interval notifier) tears down. This is
    /// how an exporter revokes p2p mappings (reference/kernel-hmm.md G.2). Call it without the
    /// mmap lock (it takes it for write) or holding it for write. EINVAL when the VMA is not a
    /// device-file mapping, is no longer mapped, or the range is unaligned or outside it.
    /// </summary>
    public Errno ZapPtes(ulong address, ulong size) => Mm.ZapVmaPtes(this, address, size);

    /// <summary>anon_vma: set once the VMA has anonymous pages (first write fault or COW).</summary>
    internal AnonVma? Anon { get; set; }

    /// <summary>Length in bytes.</summary>
    public ulong Length => End - Start;

    /// <summary>The protection the flags grant.</summary>
    public Prot Prot => (Flags.HasFlag(VmFlags.Read) ? Prot.Read : 0) | (Flags.HasFlag(VmFlags.Write) ? Prot.Write : 0) | (Flags.HasFlag(VmFlags.Exec) ? Prot.Exec : 0);

    /// <summary>vma_is_anonymous: private or shared anonymous memory has no user-visible file.</summary>
    public bool IsAnonymous => File == null;

    /// <summary>VM_SHARED.</summary>
    public bool IsShared => (Flags & VmFlags.Shared) != 0;

    /// <summary>is_cow_mapping: private and may be written.</summary>
    public bool IsCowMapping => (Flags & (VmFlags.Shared | VmFlags.MayWrite)) == VmFlags.MayWrite;

    /// <summary>is_vm_hugetlb_page.</summary>
    public bool IsHugeTlb => (Flags & VmFlags.HugeTlb) != 0;

    /// <summary>vma_is_accessible: any of read, write, exec (x86 can then read).</summary>
    public bool IsAccessible => (Flags & (VmFlags.Read | VmFlags.Write | VmFlags.Exec)) != 0;

    /// <summary>
    /// Whether vma->vm_page_prot (vm_get_page_prot over protection_map, then vma_set_page_prot)
    /// grants write. Only a shared writable mapping's protection does (PAGE_SHARED): a private
    /// writable one gets the copy-on-write protection (PAGE_COPY, read-only) so that only a write
    /// fault makes a page writable, and a shared mapping that wants write notifications (see
    /// <see cref="WantsWriteNotify"/>) drops write too. Every entry built from the VMA's
    /// protection (vm_insert_page, file faults, remove_migration_pte, mprotect) starts from this.
    /// </summary>
    internal bool PageProtWritable => (Flags & (VmFlags.Shared | VmFlags.Write)) == (VmFlags.Shared | VmFlags.Write) && !WantsWriteNotify;

    /// <summary>
    /// vma_wants_writenotify: a shared writable mapping of a file whose page cache can write back
    /// (a regular <see cref="SimFile"/>) catches the first write to each clean page to dirty it,
    /// so its protection has no write. shmem (shared anonymous memory), hugetlb and device files
    /// cannot write back and map writable at once. (The simulator has no soft-dirty tracking or
    /// userfaultfd, the kernel's other reasons for write notifications.)
    /// </summary>
    internal bool WantsWriteNotify => (Flags & (VmFlags.Shared | VmFlags.Write)) == (VmFlags.Shared | VmFlags.Write) && File is { IsInternal: false };

    /// <summary>
    /// Applies the PROT_NONE part of vm_page_prot to a present entry: a VMA with no access right
    /// maps protnone (and never writable), as mk_pte(page, PAGE_NONE) does.
    /// </summary>
    internal Pte ProtectPte(Pte pte) => IsAccessible ? pte : new Pte((pte.Raw | Pte.ProtNoneBit) & ~Pte.WriteBit);

    /// <summary>Private anonymous memory (where THP, MADV_FREE and device migration apply).</summary>
    internal bool IsPrivateAnon => File == null && !IsShared;

    /// <summary>The linear page index rmap uses for <paramref name="address"/> (linear_page_index).</summary>
    internal ulong LinearIndex(ulong address) => PgOff + ((address - Start) >> Page.Shift);

    /// <summary>The address of linear page index <paramref name="index"/>, if inside the VMA.</summary>
    internal bool TryAddressOf(ulong index, out ulong address)
    {
        address = 0;
        if (index < PgOff) return false;
        ulong off = (index - PgOff) << Page.Shift;
        if (off >= End - Start) return false;
        address = Start + off;
        return true;
    }

    /// <inheritdoc/>
    public override string ToString() => $"[0x{Start:x}, 0x{End:x}) {Flags}{(File != null ? $" {File}+{PgOff}" : "")}";
}

/// <summary>
/// Simulates <c>struct anon_vma</c> (with its root): the lineage of private anonymous VMAs that
/// may map the same anonymous pages (a VMA and its fork children, its split pieces, its moved
/// copies). Anonymous pages record its id as their owner, and rmap walks its VMAs.
/// </summary>
/// <remarks>
/// Locking, as in mm/rmap.c: <see cref="Rwsem"/> is <c>anon_vma-&gt;root-&gt;rwsem</c>. A reverse-map
/// walk (try_to_migrate, remove_migration_ptes, the THP split's unmap and remap) holds it for
/// read across the whole walk (anon_vma_lock_read) and takes only each hit's page-table lock —
/// never the mmap lock of the address spaces it visits, so an mmap writer on one of them neither
/// blocks it nor is blocked by it. Everything that changes which VMAs the walk visits or where
/// it looks in them holds it for write (anon_vma_lock_write): linking and unlinking a VMA (fork's
/// anon_vma_fork, munmap and exit's unlink_anon_vmas), a VMA split, merge or expansion
/// (vma_prepare), mremap's page-table move (take_rmap_locks), and split_huge_page. Lock order
/// (the mm/rmap.c header): mmap_lock → folio lock → anon_vma rwsem → page-table lock.
/// <see cref="Vmas"/> keeps link order, and a fork child's VMA is always linked after its parent's,
/// so a walk that visits the parent first never misses an entry fork copies meanwhile (the
/// ordering dup_mmap relies on).
/// </remarks>
internal sealed class AnonVma
{
    /// <summary>The lockdep class of <see cref="Rwsem"/>.</summary>
    internal const string LockClass = "anon_vma.rwsem";

    public AnonVma(int id) => Id = id;

    /// <summary>Owner id recorded in <see cref="PageFrames.Owner"/>.</summary>
    public int Id { get; }

    /// <summary>Every VMA linked to this lineage (anon_vma_chain), across address spaces, in link order.</summary>
    public readonly List<Vma> Vmas = new();

    /// <summary>anon_vma->root->rwsem: read by rmap walks, write by whoever changes <see cref="Vmas"/> or a linked VMA's range.</summary>
    public readonly Locking.RwSemaphore Rwsem = new(LockClass);

    /// <summary>
    /// anon_vma_lock_read, unless the calling thread already holds the rwsem (rmap_walk_locked: a
    /// split_huge_page holding it for write remaps through remove_migration_ptes). Returns whether
    /// it was taken, for <see cref="UnlockRead"/>.
    /// </summary>
    public bool LockRead()
    {
        if (Rwsem.IsHeldByCurrentThread) return false;
        Rwsem.ReadLock();
        return true;
    }

    /// <summary>anon_vma_unlock_read of a <see cref="LockRead"/> that returned true.</summary>
    public void UnlockRead(bool taken)
    {
        if (taken) Rwsem.ReadUnlock();
    }
}
