// HMM1029: allocates a backing page with reclaim while holding the update lock
[HmmDriver("dsl_alloc_under_update", UpdateLock = nameof(_update))]
public partial class DslAllocUnderUpdate
{
    private readonly KernelMutex _update = new("dsl_alloc_under_update.update");
    private readonly Machine _machine = null!;
    private readonly DevicePageTable _pt = new();
    private ulong _scratch;
    [OnInvalidate]
    void Invalidate(in NotifierRange range) => _pt.Clear(range.Start, range.End);
    private bool EnsureScratch() => _scratch != 0 || SystemPages.TryAllocateKernelPage(_machine, out _scratch);
    public bool Bind(ulong va)
    {
#if FIXED
        if (!EnsureScratch()) return false;
        _update.Lock();
        try { _pt.Clear(va, va + 4096); return true; }
        finally { _update.Unlock(); }
#else
        _update.Lock();
        try { if (!EnsureScratch()) return false; _pt.Clear(va, va + 4096); return true; }
        finally { _update.Unlock(); }
#endif
    }
}
