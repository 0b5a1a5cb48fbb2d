namespace Hmm.Samples.Mlx5;

/// <summary>The <c>ib_access_flags</c> of a memory registration.</summary>
[Flags]
public enum AccessFlags
{
    /// <summary>Local read only.</summary>
    None = 0,

    /// <summary>IB_ACCESS_LOCAL_WRITE: the NIC may write the region for local operations (RDMA READ's destination).</summary>
    LocalWrite = 1,

    /// <summary>IB_ACCESS_REMOTE_WRITE: peers may RDMA WRITE into the region.</summary>
    RemoteWrite = 2,

    /// <summary>IB_ACCESS_REMOTE_READ: peers may RDMA READ the region.</summary>
    RemoteRead = 4,

    /// <summary>IB_ACCESS_REMOTE_ATOMIC: peers may run atomics on the region.</summary>
    RemoteAtomic = 8,

    /// <summary>IB_ACCESS_ON_DEMAND: on-demand paging — nothing pinned, translations faulted in.</summary>
    OnDemand = 0x40,

    /// <summary>Everything a demo region needs.</summary>
    All = LocalWrite | RemoteWrite | RemoteRead | RemoteAtomic | OnDemand,
}

/// <summary>The advice of <c>ib_advise_mr</c> (drivers.md B.8).</summary>
public enum AdviseKind
{
    /// <summary>IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH: fault in, map read-only.</summary>
    Prefetch,

    /// <summary>IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_WRITE: fault in writable (needs a writable MR).</summary>
    PrefetchWrite,

    /// <summary>IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT: map what is present, never fault.</summary>
    PrefetchNoFault,
}

/// <summary>One scatter/gather element (<c>struct ib_sge</c>): a local key, an address, a length.</summary>
/// <param name="Address">Virtual address.</param>
/// <param name="Length">Bytes.</param>
/// <param name="Key">The MR's lkey.</param>
public readonly record struct Sge(ulong Address, uint Length, uint Key);

/// <summary>A protection domain (<c>struct ib_pd</c>): MRs and QPs of one PD only see each other.</summary>
public sealed class ProtectionDomain
{
    internal ProtectionDomain(Mlx5IbDevice nic, Hmm.Runtime.Mm.Process process, uint handle)
    {
        Nic = nic;
        Process = process;
        Handle = handle;
    }

    /// <summary>The process (user context) whose memory the PD's regions map.</summary>
    public Hmm.Runtime.Mm.Process Process { get; }

    /// <summary>The device the PD was allocated on.</summary>
    public Mlx5IbDevice Nic { get; }

    /// <summary>The PD number.</summary>
    public uint Handle { get; }

    /// <inheritdoc/>
    public override string ToString() => $"pd {Handle} on {Nic.Device.Name}";
}
