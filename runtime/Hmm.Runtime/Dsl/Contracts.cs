namespace Hmm.Dsl;

// Contracts the HMM1xxx analyzers read besides the lock annotations (LockAnnotations.cs). Each
// names a kernel fact a driver must respect at a call site — the mmu-notifier sequence protocol,
// callback contexts, mm and page reference pairs — so the rules follow the runtime's declared
// API instead of hard-coded method names. They carry no behaviour. Lock and target expressions
// are strings as in LockAnnotations.cs: "this", a parameter name, or a dotted member path.

/// <summary>When an acquisition by a <see cref="TryAcquiresAttribute"/> or <see cref="AcquiresReferenceAttribute"/> method took effect.</summary>
public enum AcquiredWhen
{
    /// <summary>Always (the method cannot fail).</summary>
    Always = 0,

    /// <summary>When the method returned true (mutex_trylock, mmget_not_zero).</summary>
    ReturnsTrue = 1,

    /// <summary>When the method returned <c>Errno.Ok</c> (0), as migrate_vma_setup and make_device_exclusive succeed.</summary>
    ReturnsOk = 2,
}

/// <summary>The method returns with <see cref="Lock"/> held for read (down_read, mmap_read_lock).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class AcquiresSharedAttribute(string @lock) : Attribute
{
    /// <summary>The lock.</summary>
    public string Lock { get; } = @lock;
}

/// <summary>The method takes <see cref="Lock"/> without sleeping and reports whether it did (mutex_trylock, down_read_trylock).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class TryAcquiresAttribute(string @lock) : Attribute
{
    /// <summary>The lock.</summary>
    public string Lock { get; } = @lock;

    /// <summary>Whether the lock is taken for read.</summary>
    public bool Shared { get; set; }
}

/// <summary>
/// The method takes a reference of kind <see cref="Kind"/> on <see cref="Target"/> that the
/// caller must drop on every path with a <see cref="ReleasesReferenceAttribute"/> method of the
/// same kind (mmget/mmput, migrate_vma_setup/finalize, a locked and referenced folio).
/// </summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Constructor, AllowMultiple = false)]
public sealed class AcquiresReferenceAttribute(string kind, string target) : Attribute
{
    /// <summary>The reference kind ("mm", "migration", "exclusive-folio", "pin").</summary>
    public string Kind { get; } = kind;

    /// <summary>"this", a parameter name (an <c>out</c> parameter receives the owner), or "return".</summary>
    public string Target { get; } = target;

    /// <summary>When the reference was taken.</summary>
    public AcquiredWhen When { get; set; }
}

/// <summary>The method drops the reference of kind <see cref="Kind"/> held on <see cref="Target"/>.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class ReleasesReferenceAttribute(string kind, string target) : Attribute
{
    /// <summary>The reference kind.</summary>
    public string Kind { get; } = kind;

    /// <summary>"this" or a parameter name.</summary>
    public string Target { get; } = target;
}

/// <summary>
/// Implementations of the annotated (interface) method run inside an mmu-notifier callback
/// (mmu_interval_notifier_ops.invalidate, mmu_notifier release): they must not remove notifiers,
/// migrate, drop mm references, nor sleep unless the range is blockable.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class NotifierCallbackAttribute : Attribute
{
    /// <summary>Whether this is the invalidate callback (its NotifierRange says whether it may block; it must call SetSeq).</summary>
    public bool Invalidate { get; set; }

    /// <summary>
    /// Whether the callback is given a <c>NotifierRange</c> that may be non-blockable (the whole-mm
    /// invalidate_range_start and _end, which the OOM reaper calls non-blockable): it may sleep only
    /// after checking <c>range.Blockable</c>. Unlike <see cref="Invalidate"/> it brings no SetSeq rule
    /// and no check of a bool result.
    /// </summary>
    public bool NonBlockableRange { get; set; }
}

/// <summary>
/// After the annotated method returns success, a notifier is live (mmu_interval_notifier_insert):
/// its invalidate callback may run on another CPU at any time until the matching
/// <see cref="RemovesNotifierAttribute"/> method returns. On <c>IntervalNotifier</c> the callbacks are
/// those of the ops it was built with; elsewhere (a DSL driver's generated <c>Attach</c>) those of
/// the declaring type. Every field the callbacks read must be set before (HMM1035).
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class InsertsNotifierAttribute : Attribute
{
}

/// <summary>
/// When the annotated method returns, the notifier is removed and no callback runs any more
/// (mmu_interval_notifier_remove, a DSL driver's generated <c>Detach</c>): fields the callbacks read
/// may be torn down from then on (HMM1035).
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class RemovesNotifierAttribute : Attribute
{
}

/// <summary>Implementations of the annotated method run in atomic context (dev_pagemap_ops.page_free): no sleeping.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class AtomicContextAttribute : Attribute
{
}

/// <summary>The method may drop the last mm reference and so run exit teardown (mmput → exit_mmap → notifier release).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class MayDropMmReferenceAttribute : Attribute
{
}

/// <summary>The method waits until running notifier callbacks finish (mmu_interval_notifier_remove, mmu_notifier_synchronize).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class WaitsForCallbacksAttribute : Attribute
{
}

/// <summary>The method waits for an invalidation in progress to end (mmu_interval_read_begin): it starts a read section.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class ReadBeginAttribute : Attribute
{
}

/// <summary>
/// The method fills a snapshot of the CPU page table (hmm_range_fault): its output may be used
/// only after a ReadRetry under the update lock reported no collision (HMM-R06).
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class SnapshotAttribute : Attribute
{
    /// <summary>Whether the method may fault pages in and so trigger invalidations and migrate_to_ram (HMM-R04).</summary>
    public bool Faults { get; set; } = true;
}

/// <summary>The method returns false when no invalidation collided with the read section (mmu_interval_read_retry).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class ReadRetryAttribute : Attribute
{
}

/// <summary>The method publishes an invalidation's sequence (mmu_interval_set_seq): required in every hand-written invalidate (HMM-R07).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class SetsSeqAttribute : Attribute
{
}

/// <summary>The method programs device mappings or decodes pfns from a snapshot: only after a successful ReadRetry under U (HMM-R06/R14).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class ConsumesSnapshotAttribute : Attribute
{
}

/// <summary>The method is a step of device memory migration (migrate_vma_*, migrate_device_*): never from a notifier callback (MIG-R11).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class MigratesAttribute : Attribute
{
}

/// <summary>
/// The method allocates memory in a way that may enter direct reclaim (GFP_KERNEL /
/// GFP_HIGHUSER): reclaim unmaps pages, which raises invalidations whose callbacks take the
/// driver's update lock U — so never call it holding U or a lock an invalidate callback takes,
/// nor from inside a notifier callback (HMM-R09; use a non-reclaiming allocation there, as
/// dmirror's GFP_NOWAIT xarray stores do).
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class MayReclaimAttribute : Attribute
{
}

/// <summary>
/// The type or member consumes system pages only (a DMA mapping, a user pointer): it cannot
/// handle device-private pfns, so a range whose output feeds it must not report them — no
/// <c>dev_private_owner</c> (HMM-R17's inverse; the core then migrates such pages back to RAM).
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method | AttributeTargets.Property, AllowMultiple = false)]
public sealed class SystemPagesOnlyAttribute : Attribute
{
}

/// <summary>
/// The method waits for queued work to finish (flush_work, flush_workqueue, flush_scheduled_work)
/// whose items may drop mm references (a deferred mmput running exit teardown) or take the
/// driver's update lock U. A notifier callback (invalidate or release) must not call it, nor a
/// holder of a lock a callback takes: the work waits for the callback, the callback for the work.
/// Drivers may put it on their own work queues' flush.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class WaitsForWorkAttribute : Attribute
{
}
