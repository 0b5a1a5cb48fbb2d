namespace Hmm.Samples.TestHmm;

/// <summary>
/// The output fields of <c>struct hmm_dmirror_cmd</c> (lib/test_hmm_uapi.h): <c>cpages</c> and
/// <c>faults</c>. The kernel copies the command back only on success, so a failed operation
/// reports both as zero.
/// </summary>
/// <param name="Cpages">Pages copied, migrated or snapshotted, as each ioctl counts them.</param>
/// <param name="Faults">Times the device had to fault pages in (hmm_range_fault) before it could finish.</param>
public readonly record struct DmirrorCounters(int Cpages, int Faults);

/// <summary>The <c>HMM_DMIRROR_FLAGS</c> ioctl argument (<c>dmirror->flags</c>).</summary>
[Flags]
public enum DmirrorFlags
{
    /// <summary>No flag.</summary>
    None = 0,

    /// <summary>
    /// <c>HMM_DMIRROR_FLAG_FAIL_ALLOC</c>: the next destination allocation of a migration (device
    /// page for MigrateToDevice, system page for MigrateToSystem and migrate_to_ram) fails once.
    /// Small pages are then skipped; a 2 MiB entry falls back to 512 single-page allocations.
    /// </summary>
    FailAlloc = 1,
}

/// <summary>
/// The <c>HMM_DMIRROR_PROT_*</c> byte a snapshot reports per page (reference E.5): a kind
/// (<see cref="None"/>, <see cref="Zero"/>, device private/coherent, local/remote) ORed with
/// <see cref="Read"/> or <see cref="Write"/> and <see cref="Pmd"/>/<see cref="Pud"/> for the
/// CPU mapping size; <see cref="Error"/> alone for an inaccessible page.
/// </summary>
public static class DmirrorProt
{
    /// <summary>HMM_DMIRROR_PROT_ERROR: no VMA, or a VMA the device may not read.</summary>
    public const byte Error = 0xFF;

    /// <summary>HMM_DMIRROR_PROT_NONE: not mapped (or an ordinary system page, before the read/write bit).</summary>
    public const byte None = 0x00;

    /// <summary>HMM_DMIRROR_PROT_READ.</summary>
    public const byte Read = 0x01;

    /// <summary>HMM_DMIRROR_PROT_WRITE.</summary>
    public const byte Write = 0x02;

    /// <summary>HMM_DMIRROR_PROT_PMD: mapped by a 2 MiB CPU entry (THP or 2 MiB hugetlb).</summary>
    public const byte Pmd = 0x04;

    /// <summary>HMM_DMIRROR_PROT_PUD: mapped by a 1 GiB CPU entry.</summary>
    public const byte Pud = 0x08;

    /// <summary>HMM_DMIRROR_PROT_ZERO: the shared zero page.</summary>
    public const byte Zero = 0x10;

    /// <summary>HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL: device-private memory of this device.</summary>
    public const byte DevPrivateLocal = 0x20;

    /// <summary>HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE: device-private memory of another device (never reported in practice: other owners are not VALID).</summary>
    public const byte DevPrivateRemote = 0x30;

    /// <summary>HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL: device-coherent memory of this device.</summary>
    public const byte DevCoherentLocal = 0x40;

    /// <summary>HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE: device-coherent memory of another device.</summary>
    public const byte DevCoherentRemote = 0x50;
}
