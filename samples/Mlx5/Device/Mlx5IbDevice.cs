using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Pci;
using Hmm.Runtime.Locking;
using SpinLock = Hmm.Runtime.Locking.SpinLock;

namespace Hmm.Samples.Mlx5;

/// <summary>
/// The mlx5-like RDMA NIC with on-demand paging (<c>mlx5_ib_dev</c>, drivers.md B): protection
/// domains, ODP memory regions (explicit and implicit) in the <c>odp_mkeys</c> table with use
/// counts, queue pairs, the page-fault EQ and its workers, <c>ib_advise_mr</c>, and — behind
/// <see cref="EnablePeerToPeer"/> — the p2p proposal of B.13. Page faults are serviced in
/// the partial file Mlx5IbDevice.Faults.cs; the data path is in <see cref="QueuePair"/>.
/// </summary>
public sealed partial class Mlx5IbDevice : IDisposable
{
    private readonly SpinLock _keysLock = new("mlx5_ib.odp_mkeys");
    private readonly Dictionary<uint, MemoryRegion> _odpMkeys = new();
    private readonly WaitQueue _resumed = new("mlx5_ib.pf_resume");
    private readonly Mlx5WorkQueue _wq;
    private uint _nextKey = 0x100, _nextPd = 1, _nextQp = 1;
    private long _unknownKeyFaults, _faultsServiced;

    /// <summary>Creates the NIC on <paramref name="device"/> (its PCI function, IOMMU, clock and copy engine).</summary>
    public Mlx5IbDevice(SimDevice device, Mlx5Options? options = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        Device = device;
        Options = options ?? new Mlx5Options();
        _wq = new Mlx5WorkQueue(device.Name, Options, ServiceQueuedFault);
    }

    /// <summary>The simulated device.</summary>
    public SimDevice Device { get; }

    /// <summary>The machine.</summary>
    public Machine Machine => Device.Machine;

    /// <summary>The options.</summary>
    public Mlx5Options Options { get; }

    /// <summary>Whether DMA translations are checked against the CPU page table (<see cref="Mlx5Options.CheckTranslations"/>).</summary>
    public bool CheckTranslations => Options.CheckTranslations;

    /// <summary>
    /// The peer GPU's pgmap owner the ODP faults pass as dev_private_owner when p2p is enabled (null:
    /// mainline behaviour, a peer's private pages migrate to RAM when the NIC faults on them).
    /// Applies to MRs registered afterwards.
    /// </summary>
    public object? PeerOwner { get; private set; }

    /// <summary>Faults whose key was not (or no longer) in the table.</summary>
    public long UnknownKeyFaults => Interlocked.Read(ref _unknownKeyFaults);

    /// <summary>Faults serviced (found their key).</summary>
    public long FaultsServiced => Interlocked.Read(ref _faultsServiced);

    /// <summary>EQEs that waited for a free fault descriptor.</summary>
    public long DeferredFaults => _wq.Deferred;

    /// <summary>Test hook: runs on the servicing thread after the fault took its mkey reference, before mapping (to hold faults in flight).</summary>
    public Action<PageFaultEvent>? FaultInFlight { get; set; }

    /// <summary>
    /// Enables the p2p proposal for peer memory like <paramref name="peerMemory"/> (a GPU's VRAM chunk):
    /// the NIC's faults will pass the GPU's owner, so its private pages are reported instead of
    /// migrated, and mapped at their BAR address. EOPNOTSUPP when the exporter does not export, refuses
    /// this NIC, or the PCI path cannot carry p2p (<see cref="P2pDma.Distance"/>): the NIC stays in
    /// migrate-back mode. Applies to MRs registered afterwards.
    /// </summary>
    public Errno EnablePeerToPeer(DevPagemap peerMemory)
    {
        ArgumentNullException.ThrowIfNull(peerMemory);
        if (Device.Pci is not { } pci || peerMemory.Ops is not IDevicePrivateP2pPages exporter || exporter.ExporterFunction is not { } function)
            return Errno.EOPNOTSUPP;
        var owner = P2pDevicePrivate.PeerOwner(peerMemory, function, pci);
        if (owner == null) return Errno.EOPNOTSUPP;
        PeerOwner = owner;
        return Errno.Ok;
    }

    /// <summary>ib_alloc_pd in <paramref name="process"/>'s context.</summary>
    public ProtectionDomain AllocPd(Process process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return new ProtectionDomain(this, process, Interlocked.Increment(ref _nextPd));
    }

    /// <summary>ib_create_qp (RC) in <paramref name="pd"/>; connect it with <see cref="LoopbackFabric.Connect"/>.</summary>
    public QueuePair CreateQp(ProtectionDomain pd)
    {
        ArgumentNullException.ThrowIfNull(pd);
        if (pd.Nic != this) throw new ArgumentException("a PD of another device", nameof(pd));
        return new QueuePair(this, pd, Interlocked.Increment(ref _nextQp), new PageFaultCompletion(_resumed));
    }

    /// <summary>
    /// ib_reg_user_mr with IB_ACCESS_ON_DEMAND over [<paramref name="start"/>, +<paramref name="length"/>)
    /// (page aligned outwards): the umem's interval notifier is inserted, nothing is pinned, and the MTT is
    /// initialised from a snapshot of what the CPU already maps (mlx5_ib_init_odp_mr: SNAPSHOT|ENABLE).
    /// EOPNOTSUPP without <see cref="AccessFlags.OnDemand"/> (pinned MRs are not modelled), EINVAL for an empty range.
    /// </summary>
    [MayBlock]
    public Errno RegMr(ProtectionDomain pd, ulong start, ulong length, AccessFlags access, out MemoryRegion? mr)
    {
        ArgumentNullException.ThrowIfNull(pd);
        mr = null;
        if ((access & AccessFlags.OnDemand) == 0) return Errno.EOPNOTSUPP;
        ulong first = Page.AlignDown(start), end = Page.AlignDown(start + length + Page.Size - 1);
        if (length == 0 || end <= first || end > AddressSpace.TaskSize) return Errno.EINVAL;
        var region = new MemoryRegion(pd, NextKey(), first, end - first, access, implicitOdp: false);
        var umem = new OdpUmem(this, pd.Process, region.Counters, first, end, region.Writable, parent: null);
        var e = umem.Register();
        if (e != Errno.Ok) return e;
        region.Umem = umem;
        e = umem.MapRange(first, end, OdpMapMode.Snapshot, out _);
        if (e != Errno.Ok)
        {
            umem.Release();
            return e;
        }
        Publish(region);
        mr = region;
        return Errno.Ok;
    }

    /// <summary>
    /// The implicit ODP MR (ib_reg_user_mr(0, U64_MAX) with ON_DEMAND): a KSM parent over the whole
    /// user address space whose entries all point at the null mkey; children appear on first fault.
    /// </summary>
    public Errno RegImplicitMr(ProtectionDomain pd, AccessFlags access, out MemoryRegion? mr)
    {
        ArgumentNullException.ThrowIfNull(pd);
        mr = null;
        if ((access & AccessFlags.OnDemand) == 0) return Errno.EOPNOTSUPP;
        var region = new MemoryRegion(pd, NextKey(), 0, AddressSpace.TaskSize, access, implicitOdp: true);
        region.Implicit = new ImplicitOdp(this, region);
        Publish(region);
        mr = region;
        return Errno.Ok;
    }

    /// <summary>
    /// ib_dereg_mr (mlx5_ib_dereg_mr, B.9): the key leaves <c>odp_mkeys</c> (new faults cannot find
    /// it), the registration's reference is dropped and the caller sleeps until in-flight faults,
    /// prefetches and DMA bursts have drained; then every page is unmapped and the notifier(s) removed.
    /// EINVAL when the key is not registered.
    /// </summary>
    [MayBlock]
    public Errno DeregMr(MemoryRegion mr)
    {
        ArgumentNullException.ThrowIfNull(mr);
        _keysLock.Lock();
        try
        {
            if (!_odpMkeys.Remove(mr.Key)) return Errno.EINVAL;
        }
        finally { _keysLock.Unlock(); }
        mr.DropAndWait();
        if (mr.Umem is { } umem) umem.Release();
        mr.Implicit?.DestroyAll();
        return Errno.Ok;
    }

    /// <summary>Waits until every queued fault, prefetch and reap has run (flush_workqueue).</summary>
    [MayBlock]
    public void FlushWork() => _wq.Flush();

    /// <summary>
    /// Runs the queued work items (prefetch, implicit child reaping) on the calling thread; for a NIC
    /// built with <see cref="Mlx5Options.Workers"/> = 0, whose workqueue is driven by a logical thread
    /// under exploration. Returns the items run.
    /// </summary>
    [MayBlock]
    public int RunQueuedWork() => _wq.RunPending();

    /// <summary>find_odp_mkey: the region of <paramref name="key"/> with a use-count reference taken, or null.</summary>
    internal MemoryRegion? FindOdpMkey(uint key)
    {
        _keysLock.Lock();
        try
        {
            if (!_odpMkeys.TryGetValue(key, out var mr)) return null;
            mr.Get();
            return mr;
        }
        finally { _keysLock.Unlock(); }
    }

    /// <summary>Queues the reaping of an implicit child found empty (from its invalidate callback: must not sleep).</summary>
    internal void ScheduleReap(ImplicitOdp parent, OdpUmem child) => _wq.Queue(new ReapWork(parent, child));

    /// <summary>Charges <paramref name="bytes"/> of link transfer to the NIC's simulated clock.</summary>
    internal void ChargeTransfer(long bytes) => Device.Clock.Advance((long)(bytes / Options.LinkGBps));

    private uint NextKey() => Interlocked.Add(ref _nextKey, 0x100);

    private void Publish(MemoryRegion mr)
    {
        _keysLock.Lock();
        try { _odpMkeys.Add(mr.Key, mr); }
        finally { _keysLock.Unlock(); }
    }

    /// <summary>Stops the workqueue threads. Deregister MRs first.</summary>
    public void Dispose() => _wq.Dispose();

    /// <inheritdoc/>
    public override string ToString() => $"mlx5_ib {Device.Name}";

    /// <summary>free_implicit_child_mr_work: the reaper of an emptied implicit child.</summary>
    private sealed class ReapWork(ImplicitOdp parent, OdpUmem child) : IMlx5Work
    {
        public void Run() => parent.Reap(child);
    }

    /// <summary>The asynchronous ib_advise_mr work, holding its mkey references until it ran.</summary>
    private sealed class PrefetchWork(MemoryRegion[] regions, Sge[] sges, OdpMapMode mode) : IMlx5Work
    {
        public void Run() => Prefetch(regions, sges, mode);
    }
}
