using System.Runtime.CompilerServices;

namespace Hmm.Runtime.Scheduling;

/// <summary>A place where an exploration may inject a failure (the kernel's fault-injection sites).</summary>
public enum FaultSite : byte
{
    /// <summary>A small (base page) system-memory allocation fails: -ENOMEM.</summary>
    SystemPage,
    /// <summary>A large (PMD folio) system-memory allocation fails; callers fall back to base pages.</summary>
    SystemLargePage,
    /// <summary>A device-memory page allocation of a driver fails.</summary>
    DevicePage,
    /// <summary>A large device folio allocation of a driver fails.</summary>
    DeviceLargePage,
    /// <summary>The notifier sequence moved: mmu_interval_read_retry says retry, hmm_range_fault returns -EBUSY.</summary>
    SeqBusy,
    /// <summary>An OOM-reaper style invalidation that may not block runs concurrently.</summary>
    NonBlockableInvalidate,
    /// <summary>The device memory is removed (memunmap_pages) while a migration runs.</summary>
    DeviceRemoval,
    /// <summary>The copy engine reports an error for a batch.</summary>
    CopyError,
    /// <summary>The device fault buffer overflows: a fault entry is dropped.</summary>
    FaultBufferOverflow,
}

/// <summary>Decides, at an injection site, whether this occurrence fails.</summary>
public interface IFaultInjectionHook
{
    /// <summary>Whether the operation at <paramref name="site"/> fails this time.</summary>
    bool Fails(FaultSite site);
}

/// <summary>
/// The single static hook of the runtime's fault-injection sites (the kernel's
/// should_fail()). Null outside an exploration: a site costs one load and one branch.
/// </summary>
public static class FaultInjection
{
    /// <summary>The injector of the running exploration, or null.</summary>
    public static IFaultInjectionHook? Hook { get; internal set; }

    /// <summary>Whether the operation at <paramref name="site"/> must fail now; false unless an exploration injects.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Fails(FaultSite site)
    {
        IFaultInjectionHook? hook = Hook;
        return hook is not null && hook.Fails(site);
    }
}
