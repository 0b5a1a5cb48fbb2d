// HMM1052: the SVM binding puts its per-mm notifiers but unloads without draining their deferred frees
public sealed class SvmBindOps : MmuNotifierOps
{
    public override void Release(MmuNotifier subscription, AddressSpace mm) { }

    public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
    {
        subscription = new MmuNotifier(this);
        return Errno.Ok;
    }

    public override void FreeNotifier(MmuNotifier subscription) { }
}

public sealed class HwSvmBind : IDisposable
{
    private static readonly SvmBindOps s_ops = new();
    private readonly Machine _machine;
    private readonly System.Collections.Generic.List<MmuNotifier> _bound = new();

    public HwSvmBind(Machine machine) => _machine = machine;

    public Errno Bind(AddressSpace mm)
    {
        Errno e = MmuNotifier.Get(s_ops, mm, out var n);
        if (e != Errno.Ok) return e;
        _bound.Add(n!);
        return Errno.Ok;
    }

    public void Dispose()
    {
        foreach (var n in _bound) n.Put();
        _bound.Clear();
#if FIXED
        MmuNotifier.Synchronize(_machine);
#endif
    }
}
