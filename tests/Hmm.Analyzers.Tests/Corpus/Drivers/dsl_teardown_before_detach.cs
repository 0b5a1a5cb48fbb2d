// HMM1035: close drops the shadow table before detaching, while an invalidation may still be walking it
[HmmDriver("dsl_teardown_before_detach", UpdateLock = nameof(_update))]
public partial class DslTeardownBeforeDetach
{
    private readonly KernelMutex _update = new("dsl_teardown_before_detach.update");
    private ulong[]? _shadow = new ulong[512];

    [OnInvalidate]
    void Invalidate(in NotifierRange range)
    {
        var shadow = _shadow!;
        for (ulong a = range.Start; a < range.End && (a >> 12) < (ulong)shadow.Length; a += 4096) shadow[a >> 12] = 0;
    }

    public Errno Open(SimDevice device, Process process) => Attach(device, process);

    public void Close()
    {
#if FIXED
        Detach();
        _shadow = null;
#else
        _shadow = null;
        Detach();
#endif
    }
}
