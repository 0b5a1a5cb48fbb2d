// HMM1051: unbind puts the per-mm notifier through its handle, then reads the user count through the alias it kept for stats
public sealed class HwMmuNotifierAliasPut
{
    public long LastUsers;

    public void Unbind(MmuNotifier handle)
    {
        var stats = handle;
#if FIXED
        LastUsers = stats.Users;
        handle.Put();
#else
        handle.Put();
        LastUsers = stats.Users;
#endif
    }
}
