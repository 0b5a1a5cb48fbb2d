// HMM1051: unbind builds its trace callback while the notifier is live, puts the notifier, then runs the callback, which reads the mm the notifier no longer pins
public sealed class HwMmuNotifierDeferredLog
{
    public AddressSpace? LastMm;

    public void Unbind(MmuNotifier handle)
    {
        Action trace = () => LastMm = handle.Mm;
#if FIXED
        trace();
        handle.Put();
#else
        handle.Put();
        trace();
#endif
    }
}
