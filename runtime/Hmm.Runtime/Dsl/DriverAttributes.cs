using Hmm.Runtime.DeviceMemory;

namespace Hmm.Dsl;

// The driver DSL (ARCHITECTURE §5, docs/dsl.md). A driver is a partial class carrying
// [HmmDriver]; the generator (generators/Hmm.Generators) writes the plumbing every HMM driver
// repeats, and the analyzers (analyzers/Hmm.Analyzers) check the declaration's shape and the
// callbacks against the context the generated code calls them in. These attributes carry no
// behaviour: everything the generated code calls is public runtime API.

/// <summary>How a driver keeps its device mirror coherent with the CPU page table.</summary>
public enum MirrorSync
{
    /// <summary>
    /// The mmu_interval_notifier sequence protocol (the default, as nouveau, amdgpu and dmirror use
    /// it): ReadBegin → mmap lock → hmm_range_fault → update lock → ReadRetry, retried on collision.
    /// </summary>
    SequenceRetry = 0,

    /// <summary>A range lock held across the fault: invalidations of the range wait for it (<c>Notifiers/RangeLock</c>).</summary>
    RangeLock = 1,

    /// <summary>A range monitor that records collisions, checked once under the update lock (<c>Notifiers/RangeMonitor</c>).</summary>
    RangeMonitor = 2,
}

/// <summary>When the device's stalled threads are replayed after a fault batch (NVIDIA UVM's replay policies, drivers.md C).</summary>
public enum ReplayPolicy
{
    /// <summary>UVM_PERF_FAULT_REPLAY_POLICY_BLOCK: replay after each serviced fault.</summary>
    Block = 0,

    /// <summary>UVM_PERF_FAULT_REPLAY_POLICY_BATCH: one replay per serviced batch (nouveau's behaviour).</summary>
    Batch = 1,

    /// <summary>UVM_PERF_FAULT_REPLAY_POLICY_BATCH_FLUSH: flush the buffer, then one replay per batch.</summary>
    BatchFlush = 2,

    /// <summary>UVM_PERF_FAULT_REPLAY_POLICY_ONCE: one replay after the whole buffer is drained.</summary>
    Once = 3,
}

/// <summary>What a driver's <see cref="FaultPolicyAttribute"/> callback decides for one device fault.</summary>
public enum FaultAction
{
    /// <summary>Map whatever the CPU page table holds (nouveau: no migration on fault).</summary>
    MapInPlace = 0,

    /// <summary>Migrate the faulting range into device memory, then map it.</summary>
    MigrateToDevice = 1,

    /// <summary>Take device-exclusive entries (for device atomics), then map.</summary>
    Exclusive = 2,

    /// <summary>Map the system pages remotely over the bus without migrating them (UVM's thrashing pin).</summary>
    RemoteMap = 3,

    /// <summary>Do not service: the faulting threads are cancelled.</summary>
    Cancel = 4,
}

/// <summary>How the generated <c>MigrateToDevice</c>/<c>MigrateToSystem</c> walk a range (<see cref="HmmDriverAttribute.MigrationWalk"/>).</summary>
public enum MigrationWalk
{
    /// <summary>
    /// The generated default: 2 MiB-aligned pieces (a THP collected whole), EFAULT for an address
    /// without a VMA, the device mappings of each piece invalidated before allocating (own MIGRATE
    /// event filtered, HMM-R19), ENOMEM when system memory runs out, <c>moved</c> in pages.
    /// </summary>
    Aligned = 0,

    /// <summary>
    /// lib/test_hmm.c's HMM_DMIRROR_MIGRATE_TO_DEV / _TO_SYS walk (dmirror_migrate_to_device,
    /// dmirror_migrate_to_system): pieces of at most 512 pages from the start address, clipped to the
    /// VMA; no VMA or no VM_READ is EINVAL; nothing invalidated before migrating to the device (the
    /// old entries stay until <c>[OnMigrated]</c> overwrites the migrated ones, so a page that fails
    /// to migrate keeps its mapping; only the hardware table of the piece is cleared, under U, just
    /// before it); to system memory only the entries that got a system page are invalidated (per
    /// run, before migrate_vma_pages); a failed system allocation is not an error (the rest stays on
    /// the device, a later CPU fault brings it back); and an extra <c>MigrateToSystem</c> overload
    /// also reports test_hmm's <c>cpages</c>: source entries left VALID and MIGRATE, a 2 MiB entry once.
    /// </summary>
    TestHmmIoctl = 1,
}

/// <summary>
/// Declares a device driver: the generator implements its mirror (interval notifier trampoline,
/// fault loop), device memory, migration and fault-buffer plumbing. The class must be a
/// non-nested, non-generic <c>partial</c> class.
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class HmmDriverAttribute(string name) : Attribute
{
    /// <summary>The driver's name (as a kernel module names its driver).</summary>
    public string Name { get; } = name;

    /// <summary>
    /// The update lock U (reference/kernel-hmm.md C): <c>nameof</c> a <c>KernelMutex</c> field.
    /// The invalidate trampoline takes it (try-lock when the range is not blockable), and device
    /// mappings are programmed only under it after a successful ReadRetry.
    /// </summary>
    public string? UpdateLock { get; set; }

    /// <summary>The mirror synchronisation mode.</summary>
    public MirrorSync Sync { get; set; } = MirrorSync.SequenceRetry;

    /// <summary>
    /// <c>nameof</c> a field or property holding the pgmap owner cookie (<c>dev_private_owner</c>,
    /// HMM-R17); when null the driver instance is the owner.
    /// </summary>
    public string? Owner { get; set; }

    /// <summary>Skip MIGRATE invalidations this driver itself started (HMM-R19): the migration code clears the device entries itself.</summary>
    public bool FilterOwnMigrations { get; set; } = true;

    /// <summary>The bound on -EBUSY retries of one fault, in milliseconds (HMM_RANGE_DEFAULT_TIMEOUT = 1000).</summary>
    public int FaultTimeoutMs { get; set; } = 1000;

    /// <summary>
    /// <c>nameof</c> an instance field or property whose type is a device-level class carrying
    /// <see cref="DeviceMemoryAttribute"/> (and no <c>[HmmDriver]</c>): the device memory every open
    /// file (driver instance) of one device shares, as test_hmm's <c>dmirror_device</c> owns the chunks
    /// all its <c>dmirror</c>s migrate into. The driver then migrates into and out of that memory, and
    /// its pgmap owner defaults to that object. Null: no shared memory (the driver may carry its own
    /// <c>[DeviceMemory]</c>).
    /// </summary>
    public string? Memory { get; set; }

    /// <summary>
    /// Also generate <c>Attach(device, process, start, end)</c>, whose interval notifier covers
    /// only [start, end) (mmu_interval_notifier_insert over one range): a driver with one mirror per
    /// registered region, like an mlx5 ODP umem over its MR, instead of one over the whole mm.
    /// </summary>
    public bool RangedNotifier { get; set; }

    /// <summary>
    /// Pages per hmm_range_fault call of the generated <c>Fault</c> (and <c>Snapshot</c>), 1..512: the
    /// range is walked in pieces of this many pages from its start, each piece faulted and programmed
    /// on its own, so a failure part-way leaves the earlier pieces mapped — as test_hmm's
    /// <c>dmirror_fault</c> walks in batches of 32 (<c>unsigned long pfns[32]</c>). Default 512 (2 MiB).
    /// </summary>
    public int FaultBatchPages { get; set; } = 512;

    /// <summary>
    /// Also generate <c>Errno Snapshot(ulong start, ulong end, Span&lt;ulong&gt; hmmPfns)</c>: the
    /// range's hmm_pfns without faulting anything in and without programming the device table
    /// (test_hmm's <c>dmirror_range_snapshot</c>, HMM_DMIRROR_SNAPSHOT) — the sequence-retry loop
    /// against the driver's own interval notifier, the words copied out under U.
    /// </summary>
    public bool GenerateSnapshot { get; set; }

    /// <summary>
    /// The piece walk of the generated <c>MigrateToDevice</c>/<c>MigrateToSystem</c>:
    /// <see cref="MigrationWalk.Aligned"/> (default) or test_hmm's ioctl walk
    /// (<see cref="MigrationWalk.TestHmmIoctl"/>). The generated migrate_to_ram is the same either way.
    /// </summary>
    public MigrationWalk MigrationWalk { get; set; }
}

/// <summary>
/// The driver owns ZONE_DEVICE memory of <see cref="Kind"/>: chunks are hot-added on demand
/// (memremap_pages), pages and large folios kept on free lists, and hot-removed by evicting
/// everything to system memory first. Requires a <see cref="CopyPagesAttribute"/> callback.
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class DeviceMemoryAttribute(DevicePageKind kind) : Attribute
{
    /// <summary>Private, coherent or p2p device memory.</summary>
    public DevicePageKind Kind { get; } = kind;

    /// <summary>Bytes hot-added at a time (a multiple of 2 MiB).</summary>
    public long ChunkBytes { get; set; } = 256L << 20;

    /// <summary>At most this many chunks; beyond it allocation fails as the kernel reports it (ENOMEM).</summary>
    public int MaxChunks { get; set; } = 16;

    /// <summary>Whether 2 MiB device folios are allocated for 2 MiB-aligned migrations.</summary>
    public bool LargeFolios { get; set; } = true;

    /// <summary>
    /// Chunks hot-added when the memory is plugged into its device (<c>Attach</c>, or
    /// <c>AttachDeviceMemory</c> for a device-level class) rather than on first use, 0..MaxChunks —
    /// test_hmm's <c>dmirror_device_init</c> allocates one. Their pages are base pages unless
    /// <see cref="SplitFolios"/>.
    /// </summary>
    public int InitialChunks { get; set; }

    /// <summary>
    /// True (default): every 2 MiB block of a hot-added chunk goes on the folio list and a base-page
    /// request splits a free folio. False: test_hmm's lists — a chunk hot-added for a base page (and
    /// every initial chunk) holds base pages only, one hot-added for a 2 MiB folio holds folios, and a
    /// base page never splits a folio (an empty base-page list hot-adds a chunk instead).
    /// </summary>
    public bool SplitFolios { get; set; } = true;

    /// <summary>
    /// Also generate <c>DevicePagesAllocated</c> and <c>DevicePagesFreed</c> (test_hmm's
    /// <c>calloc</c>/<c>cfree</c>, in base pages; a page freed while its chunk is being removed is not
    /// counted) and <c>DeviceFreeListLengths</c> (base pages, 2 MiB folios on the free lists).
    /// </summary>
    public bool PageCounters { get; set; }

    /// <summary>
    /// Also generate <c>ConfigureDeviceMemory(kind, chunkBytes, maxChunks)</c>: the kind, chunk size
    /// and chunk limit chosen at run time, before the first chunk is plugged — a probe decides, as
    /// amdgpu picks coherent or private memory per device and test_hmm per minor (and per module
    /// parameter). <see cref="Kind"/>, <see cref="ChunkBytes"/> and <see cref="MaxChunks"/> are then
    /// the defaults, <see cref="MaxChunks"/> also the upper bound.
    /// </summary>
    public bool Configurable { get; set; }
}

/// <summary>The device has a replayable fault buffer (a GPU's): the generator writes <c>ServiceFaults()</c>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class FaultBufferAttribute : Attribute
{
    /// <summary>Buffer capacity in entries; overflow drops entries (they re-fault after replay).</summary>
    public int Entries { get; set; } = 4096;

    /// <summary>Entries fetched, sorted, de-duplicated and coalesced per batch.</summary>
    public int BatchSize { get; set; } = 256;

    /// <summary>When stalled threads are replayed.</summary>
    public ReplayPolicy Replay { get; set; } = ReplayPolicy.Batch;
}

/// <summary>The driver exports its device memory to PCI peers (p2p); see <see cref="OnP2pExportAttribute"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class P2pExporterAttribute : Attribute
{
}

/// <summary>The driver maps peers' device memory over PCI p2p when the path allows it; see <see cref="OnP2pImportAttribute"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class P2pImporterAttribute : Attribute
{
}

/// <summary>
/// The invalidate callback (mmu_interval_notifier_ops.invalidate after the trampoline): runs with
/// U held and the sequence already set, after the generated code cleared the device page table
/// of the range; the range says whether it may block (<see cref="Hmm.Runtime.Mm.NotifierRange.Blockable"/>:
/// when false, do not sleep). Tears down the driver's own state for the range.
/// <para>Signature: <c>void M(in NotifierRange range)</c> (an instance method).</para>
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class OnInvalidateAttribute : Attribute
{
}

/// <summary>
/// Programs the device page table from a successful hmm_range_fault snapshot: runs with U held,
/// after the sync mode's check reported no collision (HMM-R05/R06), and after the generated code
/// installed the snapshot in the device page table. Also called by <c>MakeExclusive</c> for a
/// one-page device-exclusive mapping (the generated <c>MappingExclusive</c> is then true).
/// <para>Signature: <c>void M(HmmRange range, ReadOnlySpan&lt;ulong&gt; hmmPfns)</c>, or <c>Errno M(...)</c> with the
/// same parameters: a non-Ok errno refuses the piece (as dmirror_do_fault's -EFAULT) and <c>Fault</c> returns it
/// without faulting the later pieces; <c>MakeExclusive</c> stops at that page.</para>
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class OnMirrorFaultAttribute : Attribute
{
}

/// <summary>
/// The device's DMA engine: copies one batch (at most 512 entries) of pages during migration,
/// between migrate_vma_setup and migrate_vma_pages, with the mmap read lock held; may block; U is
/// not held. The copies must be complete on return (MIG-R06).
/// <para>Signature: <c>void M(ReadOnlySpan&lt;PageCopy&gt; copies)</c>.</para>
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class CopyPagesAttribute : Attribute
{
}

/// <summary>
/// dev_pagemap_ops.page_free: a device page's (or folio's) last reference dropped; called before
/// the generated allocator puts it back on its free list. Atomic context: must not sleep.
/// <para>Signature: <c>void M(ulong pfn)</c>.</para>
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class OnPageFreeAttribute : Attribute
{
}

/// <summary>
/// dev_pagemap_ops.migrate_to_ram, when the generated default (migrate the faulting page or its
/// PMD-mapped folio back, FaultPage set) does not fit: a CPU touched a device-private page. Runs
/// with the mmap read lock held (must not take it, MIG-R09).
/// <para>Signature: <c>VmFaultResult M(in VmFault vmf)</c>.</para>
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class OnMigrateToRamAttribute : Attribute
{
}

/// <summary>
/// The first thing the generated dev_pagemap_ops.migrate_to_ram does for a CPU fault on one of the
/// driver's device-private pages, before the migration sequence begins (before
/// migrate_vma_setup, and before an <c>[OnMigrateToRam]</c> replacement): nothing is collected, no
/// migration entry is installed, the device still maps the page, U is not held. The core holds the
/// mmap read lock (must not take it, MIG-R09) and, as do_swap_page does, the referenced and locked
/// fault page <c>vmf.Page</c>. May block — UVM's CPU-side thrashing throttle naps the faulting
/// thread here (C.3). Return true to go on with the migration; false returns from migrate_to_ram
/// without migrating, so the core drops its locks and the CPU access faults again (a retry: return
/// false only while a condition lasts that the retry will see gone, or the fault never progresses).
/// <para>Signature: <c>bool M(in VmFault vmf)</c>.</para>
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class BeforeMigrateToRamAttribute : Attribute
{
}

/// <summary>
/// The per-fault residency policy, asked by the generated <c>ServiceFaults</c> for each coalesced
/// range: map in place, migrate here, take exclusive, map remotely, or cancel. No lock held; keep
/// it cheap (it runs once per range of every batch).
/// <para>Signature: <c>FaultAction M(in FaultRange fault)</c>.</para>
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class FaultPolicyAttribute : Attribute
{
}

/// <summary>
/// mmu_notifier release / driver teardown of one mirror, called by the generated <c>Detach</c>
/// after the interval notifier is removed (no invalidation can run any more) and before the device
/// page table is cleared. No lock held.
/// <para>Signature: <c>void M()</c>.</para>
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class OnReleaseAttribute : Attribute
{
}

/// <summary>
/// Decides whether a PCI peer may map this driver's exported memory: becomes the generated
/// <c>P2pExporter</c>'s policy (<see cref="Hmm.Runtime.Pci.P2pBarExporter.Policy"/>). Return
/// <see cref="Hmm.Runtime.Errno.Ok"/> to allow, an errno to refuse.
/// <para>Signature: <c>Errno M(Vma vma, PciFunction importer, ulong start, ulong end, bool write)</c>.</para>
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class OnP2pExportAttribute : Attribute
{
}

/// <summary>
/// Programs the device's mapping of a peer's memory reached over PCI p2p, called by the generated
/// <c>ImportPeer</c> once the import is mapped; a non-Ok result undoes the import.
/// <para>Signature: <c>Errno M(P2pVmaImport import)</c>.</para>
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class OnP2pImportAttribute : Attribute
{
}

/// <summary>
/// Called after every migration this driver runs (to device, to system, and the generated
/// migrate_to_ram) has moved its pages, between migrate_vma_pages and migrate_vma_finalize, with U
/// held: maps the migrated pages in the driver's own page table (test_hmm's
/// <c>dmirror_migrate_finalize_and_map</c>) or counts them. An entry of <c>args.Src</c> that still
/// carries MIGRATE moved to <c>args.Dst</c>. Must not sleep on anything but U's followers, and must
/// not call the generated entry points (U is held).
/// <para>Signature: <c>void M(MigrateVma args)</c>.</para>
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class OnMigratedAttribute : Attribute
{
}

/// <summary>
/// A substitute allocator for migration destinations: called instead of the generated one for
/// every destination page (<c>order</c> 0) or 2 MiB folio (order 9) — device memory
/// when <c>toDevice</c>, system memory otherwise. Return false to fail that allocation (the
/// generated code then applies the kernel's fallback: a base page stays where it is, a 2 MiB
/// entry falls back to base pages); test_hmm's FAIL_ALLOC injection and backing-page allocation
/// live here. A device page must come from the driver's device memory
/// (<c>TryAllocateDevicePage</c>) and be initialised by it. mmap read lock held, U not held.
/// <para>Signature: <c>bool M(int order, bool toDevice, out ulong pfn)</c>.</para>
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class AllocatePageAttribute : Attribute
{
}

/// <summary>
/// Implemented by every generated driver whose device memory is a shared device-level class
/// (<see cref="HmmDriverAttribute.Memory"/>): the device memory hands a CPU fault on one of its
/// private pages (dev_pagemap_ops.migrate_to_ram) to the driver instance that migrated the page
/// there, as test_hmm finds the <c>dmirror</c> through the page's zone_device_data.
/// </summary>
public interface IDeviceMemoryUser
{
    /// <summary>dev_pagemap_ops.migrate_to_ram for a page this driver instance migrated (mmap read lock held, MIG-R09).</summary>
    Hmm.Runtime.DeviceMemory.VmFaultResult MigrateToRam(in Hmm.Runtime.DeviceMemory.VmFault vmf);
}
