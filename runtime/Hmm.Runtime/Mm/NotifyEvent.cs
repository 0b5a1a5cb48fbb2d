namespace Hmm.Runtime.Mm;

/// <summary>
/// Simulates <c>enum mmu_notifier_event</c>: why CPU page-table entries in a range are changing.
/// The numeric values are the kernel's (reference/kernel-hmm.md A.6).
/// </summary>
public enum NotifyEvent
{
    /// <summary>MMU_NOTIFY_UNMAP: munmap, or mremap moving the range away.</summary>
    Unmap = 0,
    /// <summary>MMU_NOTIFY_CLEAR: PTEs cleared (madvise, COW, THP split, reclaim, exclusive revocation…).</summary>
    Clear = 1,
    /// <summary>MMU_NOTIFY_PROTECTION_VMA: protection change of the whole VMA range (mprotect).</summary>
    ProtectionVma = 2,
    /// <summary>MMU_NOTIFY_PROTECTION_PAGE: per-page write-permission change (fork write-protect).</summary>
    ProtectionPage = 3,
    /// <summary>MMU_NOTIFY_SOFT_DIRTY: soft-dirty reset.</summary>
    SoftDirty = 4,
    /// <summary>MMU_NOTIFY_RELEASE: the mm is exiting; range [0, ULONG_MAX).</summary>
    Release = 5,
    /// <summary>MMU_NOTIFY_MIGRATE: device migration; <see cref="NotifierRange.Owner"/> is the pgmap owner.</summary>
    Migrate = 6,
    /// <summary>MMU_NOTIFY_EXCLUSIVE: conversion to a device-exclusive entry; owner is the caller.</summary>
    Exclusive = 7,
}
