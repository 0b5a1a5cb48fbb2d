namespace Hmm.Analyzers;

/// <summary>
/// Metadata names of the runtime types the analyzers read. The analyzers do not reference
/// Hmm.Runtime (netstandard2.0, and a cycle); a test checks each name resolves to the real type.
/// </summary>
internal static class KnownNames
{
    public const string GuardedBy = "Hmm.Dsl.GuardedByAttribute";
    public const string Requires = "Hmm.Dsl.RequiresAttribute";
    public const string RequiresShared = "Hmm.Dsl.RequiresSharedAttribute";
    public const string Excludes = "Hmm.Dsl.ExcludesAttribute";
    public const string Acquires = "Hmm.Dsl.AcquiresAttribute";
    public const string Releases = "Hmm.Dsl.ReleasesAttribute";
    public const string AcquiredAfter = "Hmm.Dsl.AcquiredAfterAttribute";
    public const string MayBlock = "Hmm.Dsl.MayBlockAttribute";
    public const string AcquiresShared = "Hmm.Dsl.AcquiresSharedAttribute";
    public const string TryAcquires = "Hmm.Dsl.TryAcquiresAttribute";
    public const string AcquiresReference = "Hmm.Dsl.AcquiresReferenceAttribute";
    public const string ReleasesReference = "Hmm.Dsl.ReleasesReferenceAttribute";
    public const string NotifierCallback = "Hmm.Dsl.NotifierCallbackAttribute";
    public const string AtomicContext = "Hmm.Dsl.AtomicContextAttribute";
    public const string MayDropMmReference = "Hmm.Dsl.MayDropMmReferenceAttribute";
    public const string WaitsForCallbacks = "Hmm.Dsl.WaitsForCallbacksAttribute";
    public const string ReadBegin = "Hmm.Dsl.ReadBeginAttribute";
    public const string Snapshot = "Hmm.Dsl.SnapshotAttribute";
    public const string ReadRetry = "Hmm.Dsl.ReadRetryAttribute";
    public const string SetsSeq = "Hmm.Dsl.SetsSeqAttribute";
    public const string ConsumesSnapshot = "Hmm.Dsl.ConsumesSnapshotAttribute";
    public const string Migrates = "Hmm.Dsl.MigratesAttribute";
    public const string MayReclaim = "Hmm.Dsl.MayReclaimAttribute";
    public const string SystemPagesOnly = "Hmm.Dsl.SystemPagesOnlyAttribute";
    public const string WaitsForWork = "Hmm.Dsl.WaitsForWorkAttribute";
    public const string InsertsNotifier = "Hmm.Dsl.InsertsNotifierAttribute";
    public const string RemovesNotifier = "Hmm.Dsl.RemovesNotifierAttribute";

    public const string HmmDriver = "Hmm.Dsl.HmmDriverAttribute";
    public const string OnInvalidate = "Hmm.Dsl.OnInvalidateAttribute";
    public const string OnMirrorFault = "Hmm.Dsl.OnMirrorFaultAttribute";
    public const string OnPageFree = "Hmm.Dsl.OnPageFreeAttribute";
    public const string OnMigrateToRam = "Hmm.Dsl.OnMigrateToRamAttribute";
    public const string OnRelease = "Hmm.Dsl.OnReleaseAttribute";
    public const string OnMigrated = "Hmm.Dsl.OnMigratedAttribute";

    public const string NotifierRange = "Hmm.Runtime.Mm.NotifierRange";
    public const string HmmRange = "Hmm.Runtime.Mirror.HmmRange";
    public const string HmmPfn = "Hmm.Runtime.Mirror.HmmPfn";
    public const string SpinLock = "Hmm.Runtime.Locking.SpinLock";
    public const string AddressSpace = "Hmm.Runtime.Mm.AddressSpace";
    public const string VmFault = "Hmm.Runtime.DeviceMemory.VmFault";
    public const string DevPagemap = "Hmm.Runtime.DeviceMemory.DevPagemap";
    public const string DevicePageKind = "Hmm.Runtime.DeviceMemory.DevicePageKind";
    public const string IntervalNotifier = "Hmm.Runtime.Notifiers.IntervalNotifier";
    public const string MigrateVma = "Hmm.Runtime.Migration.MigrateVma";

    /// <summary>The lock class of every mm's mmap lock: first in the kernel's fixed order.</summary>
    public const string MmapLockClass = AddressSpace + ".MmapLock";

    /// <summary>Every attribute type name above, for the test that checks them against the runtime.</summary>
    public static readonly string[] AllRuntimeTypes =
    [
        GuardedBy, Requires, RequiresShared, Excludes, Acquires, Releases, AcquiredAfter, MayBlock,
        AcquiresShared, TryAcquires, AcquiresReference, ReleasesReference, NotifierCallback, AtomicContext,
        MayDropMmReference, WaitsForCallbacks, ReadBegin, Snapshot, ReadRetry, SetsSeq, ConsumesSnapshot, Migrates, MayReclaim, SystemPagesOnly, WaitsForWork,
        InsertsNotifier, RemovesNotifier,
        HmmDriver, OnInvalidate, OnMirrorFault, OnPageFree, OnMigrateToRam, OnRelease, OnMigrated,
        NotifierRange, HmmRange, HmmPfn, SpinLock, AddressSpace, VmFault, DevPagemap, DevicePageKind, IntervalNotifier, MigrateVma,
    ];

    /// <summary>BCL members that sleep, for the no-sleep rules (the runtime's own are [MayBlock]).</summary>
    public static readonly string[] BlockingBclTypes =
    [
        "System.Threading.Thread.Sleep", "System.Threading.Tasks.Task.Wait", "System.Threading.WaitHandle.WaitOne",
        "System.Threading.SemaphoreSlim.Wait", "System.Threading.Monitor.Wait", "System.Threading.Thread.Join",
    ];
}
