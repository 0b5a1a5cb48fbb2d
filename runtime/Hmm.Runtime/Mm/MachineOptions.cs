namespace Hmm.Runtime.Mm;

/// <summary>Configuration of a simulated <see cref="Machine"/>.</summary>
public sealed record MachineOptions
{
    /// <summary>System RAM in bytes (default 1 GiB). A multiple of 2 MiB, at least 8 MiB. Committed lazily.</summary>
    public long SystemMemory { get; init; } = 1L << 30;

    /// <summary>Whether the lock validator (lockdep) runs. On by default, as in kernel test builds.</summary>
    public bool LockValidation { get; init; } = true;

    /// <summary>
    /// Number of 2 MiB pages set aside at boot for MAP_HUGETLB (vm.nr_hugepages). Linux's default
    /// is 0, so MAP_HUGETLB fails with ENOMEM until a pool is configured; the same holds here.
    /// </summary>
    public int HugeTlbPages { get; init; }

    /// <summary>Whether anonymous faults inside <c>MADV_HUGEPAGE</c> regions may use 2 MiB pages (THP "madvise" mode).</summary>
    public bool TransparentHugePages { get; init; } = true;
}
