// HMM1051: unbind logs the notifier's mm after dropping what may be the last reference
public sealed class HwOdpUnbind
{
    private MmuNotifier? _per_mm;
    public int LastMm;

    public void Unbind()
    {
        var n = _per_mm;
        if (n == null) return;
        _per_mm = null;
#if FIXED
        LastMm = n.Mm?.Id ?? -1;
        n.Put();
#else
        n.Put();
        LastMm = n.Mm?.Id ?? -1;
#endif
    }
}
