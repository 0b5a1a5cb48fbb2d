using Hmm.Runtime;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;

namespace Hmm.Samples.Nouveau;

/// <summary>
/// nouveau's <c>struct nouveau_svmm</c> seen from the core mm: the per-client SVMM embeds one
/// whole-mm <c>mmu_notifier</c> (drivers.md A.1, A.5), registered by the SVM_INIT ioctl
/// (<see cref="GpuSvm.SvmInit"/>) and put by the client's teardown (<see cref="GpuSvm.SvmFini"/>).
/// Ownership of the SVMM passes to the notifier at registration: the SVMM is freed only by
/// <c>free_notifier</c>, after the SRCU grace period that follows the last put, whichever comes
/// first of process exit (which unlinks the notifier, nouveau has no <c>release</c>) and fini.
/// </summary>
public sealed class SvmmNotifier : MmuNotifier
{
    private IGeneratedGpuDriver? _vmm;
    private int _frees;
    private long _cleared, _ownMigrations, _refusedNonBlockable;

    internal SvmmNotifier(IGeneratedGpuDriver gpu, KernelMutex mutex)
        : base(SvmmNotifierOps.Instance)
    {
        _vmm = gpu;
        Mutex = mutex;
    }

    /// <summary><c>svmm->mutex</c>: the driver's update lock (the same one the interval notifiers take).</summary>
    internal KernelMutex Mutex { get; }

    /// <summary>
    /// <c>svmm->vmm</c>: the GPU address space the SVMM mirrors into; null once fini began tearing the
    /// SVMM down (the notifier then does nothing). Read and written under <see cref="Mutex"/>.
    /// </summary>
    internal IGeneratedGpuDriver? Vmm
    {
        get => _vmm;
        set => Volatile.Write(ref _vmm, value);
    }

    /// <summary>Whether fini ran (svmm->vmm cleared). A lock-free read, for observers such as a free callback, which may not sleep.</summary>
    public bool TornDown => Volatile.Read(ref _vmm) == null;

    /// <summary>How many times <c>free_notifier</c> freed this SVMM (1 at most, after the last put's grace period).</summary>
    public int Frees => Volatile.Read(ref _frees);

    /// <summary>Set just before <see cref="Frees"/> becomes 1: observers of the free (tests) hook in here.</summary>
    public Action<SvmmNotifier>? OnFree { get; set; }

    /// <summary>GPU PTEs the whole-mm notifier cleared (PFNCLR).</summary>
    public long ClearedEntries => Interlocked.Read(ref _cleared);

    /// <summary>MMU_NOTIFY_MIGRATE events of this GPU's own migrations the notifier left to the migration code.</summary>
    public long OwnMigrationsIgnored => Interlocked.Read(ref _ownMigrations);

    /// <summary>Non-blockable ranges refused with -EAGAIN (the OOM reaper then skips them).</summary>
    public long NonBlockableRefused => Interlocked.Read(ref _refusedNonBlockable);

    internal void CountCleared(long entries) => Interlocked.Add(ref _cleared, entries);

    internal void CountOwnMigration() => Interlocked.Increment(ref _ownMigrations);

    internal void CountRefused() => Interlocked.Increment(ref _refusedNonBlockable);

    internal void Free()
    {
        OnFree?.Invoke(this);
        Interlocked.Increment(ref _frees);
    }
}

/// <summary>
/// <c>nouveau_mn_ops</c>: <c>invalidate_range_start</c> and <c>free_notifier</c> only (no
/// <c>release</c>, no <c>invalidate_range_end</c>: a start that can fail with -EAGAIN must not
/// come with an end). One instance, as the kernel's ops table is one static.
/// </summary>
internal sealed class SvmmNotifierOps : MmuNotifierOps
{
    public static readonly SvmmNotifierOps Instance = new();

    /// <summary>
    /// nouveau_svmm_invalidate_range_start: a non-blockable range is refused with -EAGAIN before
    /// any lock (svmm->mutex sleeps); otherwise, under svmm->mutex, nothing once the SVMM is torn
    /// down, nothing for this GPU's own MIGRATE events (the migration code invalidates the GPU
    /// itself), else the GPU PTEs of the range are cleared. (Real nouveau splits the range around
    /// the unmanaged window reserved for driver buffer objects; the simulated GPU has no such
    /// window, so the whole range is cleared.) It runs after the interval notifiers (the core calls
    /// those first), so what it clears is usually already gone.
    /// </summary>
    public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
    {
        var svmm = (SvmmNotifier)subscription;
        if (!range.Blockable)
        {
            svmm.CountRefused();
            return Errno.EAGAIN;
        }
        svmm.Mutex.Lock();
        try
        {
            if (svmm.Vmm is not { } gpu) return Errno.Ok;
            if (range.Event == NotifyEvent.Migrate && ReferenceEquals(range.Owner, gpu.PgmapOwner))
            {
                svmm.CountOwnMigration();
                return Errno.Ok;
            }
            svmm.CountCleared(gpu.Device.Invalidate(gpu.Instance, range.Start, range.End));
        }
        finally { svmm.Mutex.Unlock(); }
        return Errno.Ok;
    }

    /// <summary>nouveau_svmm_free_notifier: the SVMM's memory goes (kfree), after the last put's SRCU grace period.</summary>
    public override void FreeNotifier(MmuNotifier subscription) => ((SvmmNotifier)subscription).Free();
}
