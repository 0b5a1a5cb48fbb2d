using Hmm.Dsl;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;
using Hmm.Samples.Nouveau;
using Hmm.Samples.Nouveau.Exploration;

namespace Hmm.Samples.Tests.Exploration;

/// <summary>
/// A nouveau-like GPU declared in the DSL with one planted bug: its [FaultPolicy] takes a "fast
/// path" that programs the GPU page table straight from a read of the CPU page table, outside the
/// notifier sequence (no mmu_interval_read_begin / read_retry under the update lock, HMM-R03). An
/// munmap landing between that read and the install leaves the GPU mapping a freed frame.
/// </summary>
[HmmDriver("gpu-planted-premap", UpdateLock = nameof(_svmm))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 4, LargeFolios = false)]
[FaultBuffer(Entries = 4096, BatchSize = 4096, Replay = ReplayPolicy.Batch)]
public sealed partial class PrematureMapGpu : IGeneratedGpuDriver
{
    private readonly KernelMutex _svmm = new("gpu.svmm");

    private PrematureMapGpu() => Svm = new GpuSvm(this, _svmm, DeviceMaxChunks);

    /// <summary>The SVM logic (every callback but the planted fast path).</summary>
    public GpuSvm Svm { get; }

    /// <summary>A new driver, as <see cref="GpuRaces"/> scenarios take it.</summary>
    public static GpuUnderTest Create()
    {
        var gpu = new PrematureMapGpu();
        return new GpuUnderTest(gpu, gpu.Svm);
    }

    [FaultPolicy]
    private FaultAction Decide(in FaultRange fault)
    {
        var mm = Process.Mm;
        ulong start = fault.Start, end = fault.End;
        Span<ulong> pfns = stackalloc ulong[16];
        int n = 0;
        mm.MmapLock.ReadLock();
        try
        {
            for (ulong va = start; va < end && n < pfns.Length; va += Page.Size, n++)
            {
                var pte = mm.EntryAt(va);
                if (!pte.IsPresent) break;
                pfns[n] = HmmPfn.Make(pte.Pfn, write: false);
            }
        }
        finally { mm.MmapLock.ReadUnlock(); }
        if (n > 0)
        {
            // BUG: installed from a snapshot nobody validates — an invalidation that ran since the
            // read above is not noticed (the generated Fault would have retried).
            _svmm.Lock();
            try { DeviceTable.Install(start, pfns[..n]); }
            finally { _svmm.Unlock(); }
        }
        return Svm.Decide(in fault);
    }

    [OnInvalidate] private void Invalidate(in NotifierRange range) => Svm.Invalidated(in range);
    [OnMirrorFault] private void Mapped(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => Svm.Mapped(range, hmmPfns);
    [CopyPages] private void Copy(ReadOnlySpan<PageCopy> copies) => Svm.Copy(copies);
    [OnPageFree] private void Free(ulong pfn) => Svm.PageFreed(pfn);
}
