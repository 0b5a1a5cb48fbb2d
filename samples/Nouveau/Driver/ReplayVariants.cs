using Hmm.Dsl;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.Nouveau;

// The replay policy is a compile-time property of a DSL declaration ([FaultBuffer(Replay)]), so
// each of UVM's policies (drivers.md C.1) is its own declaration: the same GPU with UVM's
// 256-entry batches, one per policy, sharing every callback body through GpuSvm. nouveau's own
// policy (BATCH, no cap) is NouveauGpu. The declarations cannot share more than that: the DSL
// finds callbacks among the declaring class's own methods and a [HmmDriver] class is sealed
// partial, so the five one-line callbacks are repeated (a base class or generic declaration
// would be invisible to the generator).

/// <summary>The GPU with UVM's BLOCK replay policy: a replay after every serviced fault range, the batch still fetched whole.</summary>
[HmmDriver("gpu-replay-block", UpdateLock = nameof(_svmm))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 64, LargeFolios = false)]
[FaultBuffer(Entries = 4096, BatchSize = 256, Replay = ReplayPolicy.Block)]
public sealed partial class BlockReplayGpu : IGeneratedGpuDriver
{
    private readonly KernelMutex _svmm = new("gpu.svmm");

    /// <summary>A driver in <paramref name="mode"/>.</summary>
    public BlockReplayGpu(GpuPolicyMode mode = GpuPolicyMode.Uvm, UvmPolicyOptions? options = null)
        => Svm = new GpuSvm(this, _svmm, DeviceMaxChunks, mode, (options ?? UvmPolicyOptions.Default) with { ReplayPolicy = ReplayPolicy.Block }) { FaultBatchSize = FaultBatchSize };

    /// <summary>The SVM logic.</summary>
    public GpuSvm Svm { get; }

    [FaultPolicy] private FaultAction Decide(in FaultRange fault) => Svm.Decide(in fault);
    [OnInvalidate] private void Invalidate(in NotifierRange range) => Svm.Invalidated(in range);
    [OnMirrorFault] private void Mapped(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => Svm.Mapped(range, hmmPfns);
    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Svm.Copy(copies);
    [OnPageFree] private void Free(ulong pfn) => Svm.PageFreed(pfn);
    [BeforeMigrateToRam] private bool BeforeMigrateToRam(in VmFault vmf) => Svm.BeforeMigrateToRam(in vmf);
}

/// <summary>The GPU with UVM's BATCH replay policy: one replay per 256-entry batch.</summary>
[HmmDriver("gpu-replay-batch", UpdateLock = nameof(_svmm))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 64, LargeFolios = false)]
[FaultBuffer(Entries = 4096, BatchSize = 256, Replay = ReplayPolicy.Batch)]
public sealed partial class BatchReplayGpu : IGeneratedGpuDriver
{
    private readonly KernelMutex _svmm = new("gpu.svmm");

    /// <summary>A driver in <paramref name="mode"/>.</summary>
    public BatchReplayGpu(GpuPolicyMode mode = GpuPolicyMode.Uvm, UvmPolicyOptions? options = null)
        => Svm = new GpuSvm(this, _svmm, DeviceMaxChunks, mode, (options ?? UvmPolicyOptions.Default) with { ReplayPolicy = ReplayPolicy.Batch }) { FaultBatchSize = FaultBatchSize };

    /// <summary>The SVM logic.</summary>
    public GpuSvm Svm { get; }

    [FaultPolicy] private FaultAction Decide(in FaultRange fault) => Svm.Decide(in fault);
    [OnInvalidate] private void Invalidate(in NotifierRange range) => Svm.Invalidated(in range);
    [OnMirrorFault] private void Mapped(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => Svm.Mapped(range, hmmPfns);
    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Svm.Copy(copies);
    [OnPageFree] private void Free(ulong pfn) => Svm.PageFreed(pfn);
    [BeforeMigrateToRam] private bool BeforeMigrateToRam(in VmFault vmf) => Svm.BeforeMigrateToRam(in vmf);
}

/// <summary>The GPU with UVM's default BATCH_FLUSH replay policy: flush the buffer, then one replay per batch.</summary>
[HmmDriver("gpu-replay-batch-flush", UpdateLock = nameof(_svmm))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 64, LargeFolios = false)]
[FaultBuffer(Entries = 4096, BatchSize = 256, Replay = ReplayPolicy.BatchFlush)]
public sealed partial class BatchFlushReplayGpu : IGeneratedGpuDriver
{
    private readonly KernelMutex _svmm = new("gpu.svmm");

    /// <summary>A driver in <paramref name="mode"/>.</summary>
    public BatchFlushReplayGpu(GpuPolicyMode mode = GpuPolicyMode.Uvm, UvmPolicyOptions? options = null)
        => Svm = new GpuSvm(this, _svmm, DeviceMaxChunks, mode, (options ?? UvmPolicyOptions.Default) with { ReplayPolicy = ReplayPolicy.BatchFlush }) { FaultBatchSize = FaultBatchSize };

    /// <summary>The SVM logic.</summary>
    public GpuSvm Svm { get; }

    [FaultPolicy] private FaultAction Decide(in FaultRange fault) => Svm.Decide(in fault);
    [OnInvalidate] private void Invalidate(in NotifierRange range) => Svm.Invalidated(in range);
    [OnMirrorFault] private void Mapped(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => Svm.Mapped(range, hmmPfns);
    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Svm.Copy(copies);
    [OnPageFree] private void Free(ulong pfn) => Svm.PageFreed(pfn);
    [BeforeMigrateToRam] private bool BeforeMigrateToRam(in VmFault vmf) => Svm.BeforeMigrateToRam(in vmf);
}

/// <summary>The GPU with UVM's ONCE replay policy: a single replay once the buffer is drained.</summary>
[HmmDriver("gpu-replay-once", UpdateLock = nameof(_svmm))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 64, LargeFolios = false)]
[FaultBuffer(Entries = 4096, BatchSize = 256, Replay = ReplayPolicy.Once)]
public sealed partial class OnceReplayGpu : IGeneratedGpuDriver
{
    private readonly KernelMutex _svmm = new("gpu.svmm");

    /// <summary>A driver in <paramref name="mode"/>.</summary>
    public OnceReplayGpu(GpuPolicyMode mode = GpuPolicyMode.Uvm, UvmPolicyOptions? options = null)
        => Svm = new GpuSvm(this, _svmm, DeviceMaxChunks, mode, (options ?? UvmPolicyOptions.Default) with { ReplayPolicy = ReplayPolicy.Once }) { FaultBatchSize = FaultBatchSize };

    /// <summary>The SVM logic.</summary>
    public GpuSvm Svm { get; }

    [FaultPolicy] private FaultAction Decide(in FaultRange fault) => Svm.Decide(in fault);
    [OnInvalidate] private void Invalidate(in NotifierRange range) => Svm.Invalidated(in range);
    [OnMirrorFault] private void Mapped(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => Svm.Mapped(range, hmmPfns);
    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Svm.Copy(copies);
    [OnPageFree] private void Free(ulong pfn) => Svm.PageFreed(pfn);
    [BeforeMigrateToRam] private bool BeforeMigrateToRam(in VmFault vmf) => Svm.BeforeMigrateToRam(in vmf);
}
