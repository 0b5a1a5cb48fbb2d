using Hmm.Runtime;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Notifiers;

namespace Hmm.Samples.Nouveau;

public sealed partial class GpuSvm
{
    // cli->mutex: guards which SVMM the client has (cli->svm.svmm / cli->svm.cli). Taken before the
    // mmap lock (nouveau_svmm_init takes mmap_write_lock inside it), never under svmm->mutex.
    private readonly KernelMutex _cli = new("nouveau.cli");
    private SvmmNotifier? _svmmNotifier;
    private bool _svmInitDone;

    /// <summary>The client's SVMM while SVM_INIT succeeded and fini has not run; null otherwise.</summary>
    public SvmmNotifier? Svmm
    {
        get
        {
            _cli.Lock();
            try { return _svmmNotifier; }
            finally { _cli.Unlock(); }
        }
    }

    /// <summary>
    /// The SVM_INIT ioctl (nouveau_svmm_init, drivers.md A.1): creates the client's SVMM and
    /// registers its whole-mm mmu_notifier on the mirrored process's mm under the mmap lock taken
    /// for write (__mmu_notifier_register); from then on the SVMM belongs to the notifier and is
    /// freed only by its free_notifier. A client gets one SVMM: a second SVM_INIT, even after fini,
    /// returns -EBUSY (cli->svm.cli stays set). -ENODEV when the driver mirrors no process; the
    /// registration's own error otherwise.
    /// </summary>
    public Errno SvmInit()
    {
        _cli.Lock();
        try
        {
            if (_svmInitDone) return Errno.EBUSY;
            if (!_gpu.IsAttached) return Errno.ENODEV;
            var mm = _gpu.Process.Mm;
            var svmm = new SvmmNotifier(_gpu, _update);
            mm.MmapLock.WriteLock();
            try
            {
                var e = svmm.RegisterLocked(mm);
                if (e != Errno.Ok) return e;
            }
            finally { mm.MmapLock.WriteUnlock(); }
            _svmmNotifier = svmm;
            _svmInitDone = true;
            return Errno.Ok;
        }
        finally { _cli.Unlock(); }
    }

    /// <summary>
    /// nouveau_svmm_fini, from the client's teardown: under svmm->mutex the SVMM forgets its GPU
    /// address space (the notifier does nothing from then on), then the notifier reference
    /// __mmu_notifier_register gave is put. If the process already exited, exit_mmap unlinked the
    /// notifier and this put is the one that frees; either way free_notifier frees the SVMM after an
    /// SRCU grace period, on the SRCU worker. Safe to call twice (the second does nothing).
    /// </summary>
    public void SvmFini()
    {
        SvmmNotifier? svmm;
        _cli.Lock();
        try
        {
            svmm = _svmmNotifier;
            _svmmNotifier = null;
        }
        finally { _cli.Unlock(); }
        if (svmm == null) return;
        svmm.Mutex.Lock();
        try { svmm.Vmm = null; }
        finally { svmm.Mutex.Unlock(); }
        svmm.Put();
    }
}
