// HMM1041: the peer GPU's pagemap reference is not put when the page turns out not to be device-private
[HmmDriver("dsl_peer_pagemap_leak", UpdateLock = nameof(_update))]
public partial class DslPeerPagemapLeak
{
    private readonly KernelMutex _update = new("dsl_peer_pagemap_leak.update");
    private Machine _machine = null!;
    private long _peerPages;

    /// <summary>Counts the peer's pages this GPU reaches over the link (the peer must stay plugged meanwhile).</summary>
    public Errno AccountPeerPage(ulong pfn)
    {
        var peer = DevPagemap.Get(_machine, pfn);
        if (peer == null) return Errno.EFAULT;
#if FIXED
        try
        {
            if (peer.Kind != DevicePageKind.Private) return Errno.EOPNOTSUPP;
            _peerPages += peer.RefCount(pfn) > 0 ? 1 : 0;
        }
        finally { peer.Put(); }
#else
        if (peer.Kind != DevicePageKind.Private) return Errno.EOPNOTSUPP;
        _peerPages += peer.RefCount(pfn) > 0 ? 1 : 0;
        peer.Put();
#endif
        return Errno.Ok;
    }
}
