namespace Hmm.Runtime.Mm;

/// <summary>
/// Simulates a device file's <c>file_operations.mmap</c> together with the mapping's
/// <c>vm_operations_struct</c>: what a driver supplies when user space mmaps its device file
/// (<see cref="Process.MmapDevice(ulong, Prot, MapFlags, IVmOperations, ulong)"/>). The VMA is a special mapping (VM_MIXEDMAP |
/// VM_DONTEXPAND): it has no ->fault handler, so a CPU access where the driver inserted nothing
/// gets SIGBUS, and it is never migrated (its pages have no anonymous mapping).
/// </summary>
public interface IVmOperations
{
    /// <summary>
    /// f_op->mmap: called once for the new VMA with the mmap lock held for write. The driver may
    /// populate it with <see cref="Vma.InsertPage"/> (vm_insert_page) or leave it without CPU
    /// mappings. A non-Ok result fails the mmap with that errno and nothing stays mapped.
    /// </summary>
    Errno Mmap(Vma vma);

    /// <summary>vm_ops->close: the VMA (or a piece of it) is going away (munmap, exit).</summary>
    void Close(Vma vma);
}
