using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Pci;

/// <summary>
/// The exporter side of the 2019 "Device peer to peer (p2p) through vma" RFC (not merged;
/// reference/kernel-hmm.md G.2): the <c>vm_operations_struct.p2p_map / p2p_unmap</c> hooks a
/// device driver adds to the special VMA it creates when user space mmaps its device file.
/// The memory behind the VMA need not be CPU-mapped at all (<see cref="IVmOperations.Mmap"/>
/// may insert nothing, so a CPU access gets SIGBUS); peers reach it only through
/// <see cref="P2pMap"/>. The exporting driver owns the policy and may refuse; an importer must
/// tear down (and call <see cref="P2pUnmap"/>) on every mmu-notifier invalidation of the range,
/// which lets the exporter revoke at any time with <see cref="Vma.ZapPtes"/>.
/// </summary>
/// <remarks>
/// The RFC's other case — device-private (HMM) pages of another device inside an ordinary
/// anonymous VMA — has no hook in mainline. The simulator follows G.1's last paragraph: an
/// importer allowed to reach the exporter's memory (checked with <see cref="P2pDma.Distance"/>)
/// passes the exporter's <c>pgmap->owner</c> as its <c>dev_private_owner</c> to
/// <c>HmmRange.Fault</c>, so those pages are reported instead of migrated; any other importer
/// (the default, B.13) gets them migrated back to RAM by the fault.
/// </remarks>
public interface IP2pVmaOps : IVmOperations
{
    /// <summary>The exporting PCI function, for the importer's reachability check (the RFC's <c>pci_test_p2p</c>).</summary>
    PciFunction Exporter { get; }

    /// <summary>
    /// vm_ops->p2p_map: map [<paramref name="start"/>, <paramref name="end"/>) of
    /// <paramref name="vma"/> for <paramref name="importer"/>, writing one DMA address per page
    /// into <paramref name="busAddresses"/>. Returns the number of pages mapped (all of them) or
    /// a negative errno to refuse. Once a range was mapped for a device, mapping it again while
    /// the VMA lives should succeed. Called with the mmap lock held for read.
    /// </summary>
    long P2pMap(Vma vma, PciFunction importer, ulong start, ulong end, Span<ulong> busAddresses, bool write);

    /// <summary>vm_ops->p2p_unmap: the importer stopped using [start, end). Returns 0 or a negative errno.</summary>
    long P2pUnmap(Vma vma, PciFunction importer, ulong start, ulong end);
}
