using Microsoft.CodeAnalysis;

namespace Hmm.Analyzers.Rules;

/// <summary>
/// The HMM1xxx descriptors: lock discipline (1001–1006), mirroring and notifier rules
/// (1010–1019, kernel-hmm.md C HMM-Rxx), migration, exclusive access and references (1020–1025).
/// Every rule has a page under docs/diagnostics. Rules decided inside one body are reported when
/// that body is analysed (so the IDE offers their fixes); rules whose verdict may need the whole
/// compilation (callees' summaries, callers of private helpers, the lock-order graph) carry the
/// CompilationEnd tag and are reported, at least partly, when the compilation's analysis ends.
/// </summary>
internal static class HmmRules
{
    public const string LockingCategory = "HmmLocking";
    public const string MirrorCategory = "HmmMirror";
    public const string NotifierCategory = "HmmNotifier";
    public const string MigrationCategory = "HmmMigration";

    private static DiagnosticDescriptor Rule(string id, string title, string message, string category, string description, bool end = true) =>
        new(id, title, message, category, DiagnosticSeverity.Warning, isEnabledByDefault: true, description,
            helpLinkUri: "docs/diagnostics/" + id + ".md",
            customTags: end ? [WellKnownDiagnosticTags.CompilationEnd] : []);

    public static readonly DiagnosticDescriptor GuardedAccess = Rule("HMM1001", "Guarded member accessed without its lock",
        "{0} requires holding '{1}'{2}", LockingCategory,
        "A [GuardedBy] field or property is read without its lock held (at least shared) or written without it held exclusively; private helpers hand the requirement to their callers.");
    public static readonly DiagnosticDescriptor RequiresNotHeld = Rule("HMM1002", "Required lock not held at a call",
        "{0} requires holding '{1}'{2}", LockingCategory,
        "The callee is [Requires]/[RequiresShared] a lock the caller does not hold on every path to the call.");
    public static readonly DiagnosticDescriptor ExcludedLockHeld = Rule("HMM1003", "Excluded lock held at a call",
        "Calling '{0}' while holding '{1}', which it takes or waits for", LockingCategory,
        "The callee is [Excludes] a lock the caller may hold: it takes it or waits for its holders (self-deadlock).", end: false);
    public static readonly DiagnosticDescriptor LockNotReleased = Rule("HMM1004", "Lock not released on some path",
        "Lock '{0}' acquired here is not released on some path out of the method", LockingCategory,
        "A lock taken in a method is still held on some return or throw path, and the method does not declare [Acquires].", end: false);
    public static readonly DiagnosticDescriptor ReleaseNotHeld = Rule("HMM1005", "Lock released without being held",
        "Releasing '{0}', which is not held here", LockingCategory,
        "An unlock on a path where the lock is not held (double unlock, or unlock of a lock taken by the caller without [Releases]).", end: false);
    public static readonly DiagnosticDescriptor LockOrder = Rule("HMM1006", "Lock order violated",
        "Acquiring '{0}' here: {1}", LockingCategory,
        "Acquisitions form a cycle in the compilation's lock order (nesting observed in bodies and callees, [AcquiredAfter], and the kernel order mmap lock → update lock U → callback locks), or re-acquire a held lock.");
    public static readonly DiagnosticDescriptor MmapLockRequired = Rule("HMM1010", "mmap lock not held (HMM-R01)",
        "{0} requires holding the mmap lock{2}", MirrorCategory,
        "hmm_range_fault, the migrate_vma steps, make_device_exclusive and VMA lookups need the mm's mmap lock held (read) across the call.");
    public static readonly DiagnosticDescriptor FaultUnderCallbackLock = Rule("HMM1011", "ReadBegin or hmm_range_fault under a lock an invalidate takes (HMM-R03/R04)",
        "'{0}' is called holding '{1}', which {2} takes: deadlock once an invalidation waits for it", MirrorCategory,
        "ReadBegin sleeps until invalidations end and hmm_range_fault triggers invalidations and migrate_to_ram; neither may run holding U or any lock those callbacks take.");
    public static readonly DiagnosticDescriptor SnapshotWithoutRetry = Rule("HMM1012", "Snapshot used without a successful ReadRetry under U (HMM-R06/R14)",
        "hmm_range_fault output is used before ReadRetry under the update lock reported no collision", MirrorCategory,
        "Device mappings may be programmed and pfns decoded only while U is held after ReadRetry returned false for the sequence the fault used.");
    public static readonly DiagnosticDescriptor BlockingInNonBlockable = Rule("HMM1013", "Blocking call in an invalidate not guarded by Blockable (HMM-R07/R09)",
        "'{0}' may sleep{1}, but the range may be non-blockable here: check range.Blockable first", NotifierCategory,
        "An invalidate callback may sleep only when NotifierRange.Blockable is true; otherwise it must try-lock and return false.");
    public static readonly DiagnosticDescriptor FalseOnBlockable = Rule("HMM1014", "Invalidate returns false on a blockable range (HMM-R08)",
        "The invalidate callback returns false on a path where the range may be blockable", NotifierCategory,
        "Returning false is only allowed for a non-blockable range; the core ignores it otherwise and device mappings survive.", end: false);
    public static readonly DiagnosticDescriptor SetSeqMissing = Rule("HMM1015", "Invalidate succeeds without SetSeq (HMM-R07)",
        "The invalidate callback returns success on a path that does not call SetSeq", NotifierCategory,
        "A hand-written invalidate must call IntervalNotifier.SetSeq(curSeq) under U on every successful path, or ReadRetry misses the collision.", end: false);
    public static readonly DiagnosticDescriptor NotifierRemovalInCallback = Rule("HMM1016", "Notifier removed in a callback or under a callback lock (HMM-R10)",
        "'{0}' waits for running callbacks{1}: self-deadlock", NotifierCategory,
        "mmu_interval_notifier_remove waits for the invalidation in progress; from a callback or holding a lock the callback takes it never returns.");
    public static readonly DiagnosticDescriptor MmDropInCallback = Rule("HMM1017", "mm reference dropped in a callback or under a callback lock",
        "'{0}' may drop the last mm reference and run exit teardown{1}", NotifierCategory,
        "mmput may run exit_mmap and the notifier release, which take the locks the callback holds; drop mm references outside callbacks and callback locks (or defer the put).");
    public static readonly DiagnosticDescriptor ReqWriteWithoutFault = Rule("HMM1018", "ReqWrite requested without ReqFault (HMM-R15)",
        "DefaultFlags requests ReqWrite without ReqFault on some path", MirrorCategory,
        "HMM_PFN_REQ_WRITE only takes effect together with HMM_PFN_REQ_FAULT; alone it silently yields read-only pfns.", end: false);
    public static readonly DiagnosticDescriptor OwnerWithoutEvent = Rule("HMM1019", "NotifierRange.Owner read without checking Event (HMM-R18)",
        "Owner is read before Event was checked on this path", NotifierCategory,
        "range->owner is only initialised for MIGRATE and EXCLUSIVE events; check Event before reading it.", end: false);
    public static readonly DiagnosticDescriptor MigrationNotFinalized = Rule("HMM1020", "migrate_vma Setup without Finalize on some path (MIG-R02)",
        "A successful '{0}' setup here is not finalized on some path", MigrationCategory,
        "After MigrateVma.Setup returns Ok, MigrateVma.Finalize must run on every path, error paths included, or the pages stay locked behind migration entries.");
    public static readonly DiagnosticDescriptor MigrationInCallback = Rule("HMM1021", "Migration from a notifier callback (MIG-R11)",
        "'{0}' migrates pages{1} inside a notifier callback", MigrationCategory,
        "Migration raises MIGRATE invalidations and locks pages; from inside a notifier callback it recurses into the notifier and deadlocks.");
    public static readonly DiagnosticDescriptor ExclusiveNotReleased = Rule("HMM1022", "Device-exclusive folio not unlocked and put (EXC-R01)",
        "The '{0}' page taken here is not released on some path", MigrationCategory,
        "make_device_exclusive returns a locked, referenced folio: unlock and put it (ExclusivePage.Dispose) on every path, retries included.");
    public static readonly DiagnosticDescriptor MmReferenceLeaked = Rule("HMM1023", "mm reference not put on some path (HMM-R13)",
        "The '{0}' reference taken here is not put on some path", NotifierCategory,
        "Every successful TryGet (mmget_not_zero) needs a Put on every path; a leaked reference keeps the address space alive forever.");
    public static readonly DiagnosticDescriptor SleepInAtomic = Rule("HMM1024", "Sleeping in atomic context",
        "'{0}' may sleep{1} in atomic context ({2})", LockingCategory,
        "page_free runs in atomic context and a spinlock holder must not sleep: no [MayBlock] call there, directly or through helpers.");
    public static readonly DiagnosticDescriptor ReferenceLeaked = Rule("HMM1025", "Reference not released on some path",
        "The '{0}' reference taken here is not released on some path", MigrationCategory,
        "A reference declared by [AcquiresReference] (pins and others) must be released on every path.");

    public static readonly DiagnosticDescriptor FaultWithoutReadBegin = Rule("HMM1026", "hmm_range_fault retried without a new ReadBegin (HMM-R02/R05)",
        "hmm_range_fault is called again on a path where no ReadBegin started a new attempt since the previous call", MirrorCategory,
        "Each attempt must take a fresh sequence from ReadBegin (after dropping the mmap lock); retrying with the old one spins on -EBUSY or validates against a stale sequence.", end: false);

    public static readonly DiagnosticDescriptor RangeShape = Rule("HMM1027", "hmm_pfns does not match the range, or stale per-entry requests (HMM-R16)",
        "{0}", MirrorCategory,
        "hmm_pfns must hold exactly (End − Start) / 4096 entries of a page-aligned range, and when PfnFlagsMask honours per-entry inputs they must be rewritten before each attempt: the previous attempt's outputs are not requests.", end: false);
    public static readonly DiagnosticDescriptor OwnerNotSet = Rule("HMM1028", "hmm_range_fault without the driver's device-private owner (HMM-R17)",
        "'{0}' creates device-private memory, but this range's DevPrivateOwner is never set: its own device pages are migrated back to RAM on every fault", MirrorCategory,
        "A driver that owns device-private memory must set HmmRange.DevPrivateOwner to its pgmap owner, or hmm_range_fault faults its own device pages back to system memory (ping-pong) instead of reporting them.");
    public static readonly DiagnosticDescriptor ReclaimUnderUpdateLock = Rule("HMM1029", "Allocation that may reclaim under U or in a callback (HMM-R09)",
        "'{0}' may enter reclaim{1}: reclaim raises invalidations that wait for it", NotifierCategory,
        "A reclaim-capable allocation (GFP_KERNEL) may unmap pages and run invalidate callbacks that take U; never allocate that way holding U or a lock a callback takes, nor inside a notifier callback.");
    public static readonly DiagnosticDescriptor MigrationLockDropped = Rule("HMM1030", "mmap lock dropped between migrate_vma steps (MIG-R01)",
        "The mmap lock is released here while the migration set up at line {0} is not finalized: Setup, Pages and Finalize need one hold", MigrationCategory,
        "migrate_vma_setup, _pages and _finalize must run under one and the same mmap lock hold; dropping it in between lets the VMA be unmapped or changed under the migration.", end: false);

    public static readonly DiagnosticDescriptor NotifierNeverRemoved = Rule("HMM1031", "Interval notifier inserted but never removed (HMM-R12)",
        "The notifier inserted here is never removed: the mm stays pinned (mm_count) and callbacks keep running into the driver after it is gone", NotifierCategory,
        "Every mmu_interval_notifier_insert needs exactly one mmu_interval_notifier_remove, also after the process exited; a notifier never removed leaks the mm and calls into freed driver state.");
    public static readonly DiagnosticDescriptor NotifierUsedAfterRemove = Rule("HMM1032", "Interval notifier used after it was removed",
        "'{0}' on a notifier removed at line {1}{2}", NotifierCategory,
        "After mmu_interval_notifier_remove the notifier is off the interval tree: its sequence is never advanced again (ReadBegin/ReadRetry see no invalidation) and removing it twice corrupts the tree. Insert it again first.", end: false);
    public static readonly DiagnosticDescriptor MigrateToRamWithoutFaultPage = Rule("HMM1033", "migrate_to_ram migrates without the faulting page (MIG-R08)",
        "This migration in migrate_to_ram does not pass the faulting page (FaultPage = vmf.Page): Setup cannot lock the page the core already locked, so it never migrates and the CPU refaults forever", MigrationCategory,
        "In migrate_to_ram the core holds the faulting page locked and referenced; migrate_vma_setup must be told (args->fault_page) or it skips that page and the fault livelocks.", end: false);

    public static readonly DiagnosticDescriptor OwnerOnSystemPagesPath = Rule("HMM1034", "Device-private owner on a range whose pfns feed a system-pages-only path",
        "This range reports the owner's device-private pages, but its pfns go to '{0}', which can only map system pages", MirrorCategory,
        "A range whose output is DMA-mapped or used as a user pointer must not set DevPrivateOwner: device-private pfns are not CPU/bus addressable. Leave the owner null so hmm_range_fault migrates such pages back to system memory.", end: false);

    public static readonly DiagnosticDescriptor NotifierFieldLifetime = Rule("HMM1035", "Field a notifier callback reads is not live for the notifier's whole lifetime",
        "{0}", NotifierCategory,
        "Once Insert returns the invalidate callback (release included) may run at any time until Remove returns: every field it reads must be assigned before the insert, and torn down (nulled, disposed) only after the remove or under the update lock U the callback takes.");
    public static readonly DiagnosticDescriptor CallbackWaitsForWork = Rule("HMM1036", "Notifier callback waits for work that may drop an mm reference or take U",
        "'{0}' waits for queued work{1} {2}: the work may drop the last mm reference or take the update lock, and then waits for this callback", NotifierCategory,
        "A [WaitsForWork] call (flush of a work queue carrying deferred mm puts or driver work that takes U) from an invalidate or release callback, or while holding a lock a callback takes, deadlocks: the work's exit teardown or lock acquisition waits for the callback that waits for the work.");
    public static readonly DiagnosticDescriptor UnboundedBusyRetry = Rule("HMM1037", "EBUSY retried without a bound or back-off",
        "'{0}' is retried on EBUSY by a loop with no bound (counter, deadline, cancellation) and no back-off (ReadBegin, sleep, yield): a competing invalidation or migration can livelock it", MigrationCategory,
        "EBUSY means a concurrent invalidation, migration or reference holder won; retrying at once without a bound or a wait can spin forever against it. Bound the loop (HMM_RANGE_DEFAULT_TIMEOUT-style deadline or an attempt counter) or wait before retrying (ReadBegin sleeps until the colliding invalidation ends).", end: false);

    public static DiagnosticDescriptor ForReference(string kind) => kind switch
    {
        "migration" => MigrationNotFinalized,
        "exclusive-folio" => ExclusiveNotReleased,
        "mm" => MmReferenceLeaked,
        "pgmap" => DevicePageRules.PagemapReferenceLeaked,
        MmuNotifierRules.Kind => MmuNotifierRules.ReferenceLeaked,
        _ => ReferenceLeaked,
    };

    public static readonly DiagnosticDescriptor[] All =
    [
        GuardedAccess, RequiresNotHeld, ExcludedLockHeld, LockNotReleased, ReleaseNotHeld, LockOrder,
        MmapLockRequired, FaultUnderCallbackLock, SnapshotWithoutRetry, BlockingInNonBlockable, FalseOnBlockable,
        SetSeqMissing, NotifierRemovalInCallback, MmDropInCallback, ReqWriteWithoutFault, OwnerWithoutEvent,
        MigrationNotFinalized, MigrationInCallback, ExclusiveNotReleased, MmReferenceLeaked, SleepInAtomic, ReferenceLeaked, FaultWithoutReadBegin,
        RangeShape, OwnerNotSet, ReclaimUnderUpdateLock, MigrationLockDropped,
        NotifierNeverRemoved, NotifierUsedAfterRemove, MigrateToRamWithoutFaultPage, OwnerOnSystemPagesPath,
        NotifierFieldLifetime, CallbackWaitsForWork, UnboundedBusyRetry,
    ];
}
