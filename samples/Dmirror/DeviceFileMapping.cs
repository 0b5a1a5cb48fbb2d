using Hmm.Runtime;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.TestHmm;

/// <summary>
/// The device file's <c>file_operations.mmap</c> (dmirror_fops_mmap) and its VMA's ops: every
/// page of the new VMA gets a zeroed kernel page through vm_insert_page, after which the driver
/// drops its own reference (put_page) — the mapping keeps the page alive.
/// </summary>
internal sealed class DeviceFileMapping : IVmOperations
{
    private readonly Machine _machine;

    public DeviceFileMapping(Machine machine) => _machine = machine;

    /// <summary>dmirror_fops_mmap.</summary>
    public Errno Mmap(Vma vma)
    {
        for (ulong addr = vma.Start; addr < vma.End; addr += Page.Size)
        {
            if (!SystemPages.TryAllocateKernelPage(_machine, out ulong pfn)) return Errno.ENOMEM;
            var e = vma.InsertPage(addr, pfn);
            SystemPages.PutKernelPage(_machine, pfn);   // on failure this frees it (__free_page)
            if (e != Errno.Ok) return e;
        }
        return Errno.Ok;
    }

    /// <summary>Nothing to do: the pages go with their mappings.</summary>
    public void Close(Vma vma) { }
}
