// HMM1018: asks for writable pfns without asking to fault
[HmmDriver("dsl_req_write", UpdateLock = nameof(_update))]
public partial class DslReqWrite
{
    private readonly KernelMutex _update = new("dsl_req_write.update");
    private AddressSpace _mm = null!;
    private IntervalNotifier _notifier = null!;
    private readonly DevicePageTable _pt = new();
    public HmmRange RangeFor(ulong start, bool write) => new(_notifier, start, start + 4096)
    {
#if FIXED
        DefaultFlags = HmmPfn.ReqFault | (write ? HmmPfn.ReqWrite : 0),
#else
        DefaultFlags = write ? HmmPfn.ReqWrite : HmmPfn.ReqFault,
#endif
    };
}
