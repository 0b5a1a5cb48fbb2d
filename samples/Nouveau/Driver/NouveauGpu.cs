using Hmm.Dsl;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.Nouveau;

/// <summary>
/// The nouveau-like GPU driver, declared in the DSL (drivers.md A): one SVMM whose update lock is
/// <c>svmm->mutex</c>, 2 MiB chunks of device-private VRAM (at most 512 = 1 GiB), and one replayable
/// fault buffer drained whole per pass (BatchSize = Entries: nouveau fetches everything between GET
/// and PUT, A.11) with one replay per batch. The generator writes the interval-notifier
/// trampoline, the fault loop, the fault-batch service, the migration sequences and the devmem
/// hotplug; the callbacks hand every decision to <see cref="GpuSvm"/>, which runs nouveau's rule
/// by default and the UVM-style policy when switched to it.
/// </summary>
/// <remarks>
/// VRAM is device-private with base-page folios (<c>LargeFolios = false</c>) so a CPU touch brings
/// back exactly one page, as nouveau's migrate_to_ram does (A.9).
/// </remarks>
[HmmDriver("nouveau", UpdateLock = nameof(_svmm), Owner = nameof(_hive))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 512, LargeFolios = false)]
[FaultBuffer(Entries = 4096, BatchSize = 4096, Replay = ReplayPolicy.Batch)]
public sealed partial class NouveauGpu : IGeneratedGpuDriver
{
    private readonly KernelMutex _svmm = new("nouveau.svmm");

    // The pgmap owner cookie when the GPU belongs to a hive (null: the driver instance is the owner).
    private readonly GpuHive? _hive;

    /// <summary>
    /// A driver in <paramref name="mode"/> (nouveau's policy unless told otherwise); with
    /// <paramref name="hive"/> its pgmap owner is the hive (join it with <see cref="GpuHive.Join"/>
    /// once attached), so the hive's GPUs map each other's VRAM in place.
    /// </summary>
    public NouveauGpu(GpuPolicyMode mode = GpuPolicyMode.Nouveau, UvmPolicyOptions? options = null, GpuHive? hive = null)
    {
        _hive = hive;
        Svm = new GpuSvm(this, _svmm, DeviceMaxChunks, mode, options) { FaultBatchSize = FaultBatchSize };
    }

    /// <summary>The hive whose pgmap owner this GPU shares, or null.</summary>
    public GpuHive? Hive => _hive;

    /// <summary>The SVM logic: policy, counters, ioctls.</summary>
    public GpuSvm Svm { get; }

    [FaultPolicy] private FaultAction Decide(in FaultRange fault) => Svm.Decide(in fault);

    [OnInvalidate]
    private void Invalidate(in NotifierRange range)
    {
        Svm.Invalidated(in range);
        _hive?.NoteOwnEvent(this, in range);
    }

    [OnMirrorFault]
    private void Mapped(HmmRange range, ReadOnlySpan<ulong> hmmPfns)
    {
        Svm.Mapped(range, hmmPfns);
        _hive?.MapPeerPages(this, range, hmmPfns);
    }

    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies)
    {
        // A hive member's migration unmaps the other members before the first byte moves (GpuHive remarks).
        _hive?.UnmapPeers(this);
        Svm.Copy(copies);
    }

    /// <summary>Clears [start, end) from this GPU's device table under its update lock (another hive member's migration). Returns the entries cleared.</summary>
    internal long UnmapForPeer(ulong start, ulong end)
    {
        _svmm.Lock();
        try { return Device.Invalidate(Instance, start, end); }
        finally { _svmm.Unlock(); }
    }

    [OnPageFree] private void Free(ulong pfn) => Svm.PageFreed(pfn);

    [BeforeMigrateToRam] private bool BeforeMigrateToRam(in VmFault vmf) => Svm.BeforeMigrateToRam(in vmf);
}
