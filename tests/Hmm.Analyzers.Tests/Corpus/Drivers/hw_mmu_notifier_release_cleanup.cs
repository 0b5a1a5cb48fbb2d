// HMM1053: the per-process context is torn down in release, which a notifier put before exit never gets
public sealed class ProcessQueues : IDisposable
{
    public bool Active = true;
    public void Dispose() => Active = false;
}

public sealed class HwKfdProcessOps : MmuNotifierOps
{
    private readonly ProcessQueues _queues = new();

    public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
    {
        subscription = new MmuNotifier(this);
        return Errno.Ok;
    }

#if FIXED
    public override void Release(MmuNotifier subscription, AddressSpace mm) => _queues.Active = false;

    public override void FreeNotifier(MmuNotifier subscription) => _queues.Dispose();
#else
    public override void Release(MmuNotifier subscription, AddressSpace mm) => _queues.Dispose();
#endif
}
