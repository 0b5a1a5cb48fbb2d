using Hmm.Runtime.Locking;

namespace Hmm.Samples.Mlx5;

/// <summary>
/// An ODP memory region and its mkey (drivers.md B.1): lkey = rkey, its PD, access flags and VA
/// range; backed by one <see cref="OdpUmem"/> (explicit) or by lazily created 1 GiB children
/// (implicit, <see cref="ImplicitOdp"/>). The mkey's <b>use count</b> is how deregistration waits
/// for in-flight work (B.9): every fault, prefetch and DMA takes a reference while the key is in the
/// device's <c>odp_mkeys</c> table; dereg erases the key, drops its own reference and sleeps until
/// the count reaches zero.
/// </summary>
public sealed class MemoryRegion
{
    private readonly WaitQueue _drained = new("mlx5_ib.mkey_usecount");
    private int _useCount = 1;

    internal MemoryRegion(ProtectionDomain pd, uint key, ulong start, ulong length, AccessFlags access, bool implicitOdp)
    {
        Pd = pd;
        Key = key;
        Start = start;
        Length = length;
        Access = access;
        IsImplicit = implicitOdp;
    }

    /// <summary>The protection domain.</summary>
    public ProtectionDomain Pd { get; }

    /// <summary>lkey = rkey.</summary>
    public uint Key { get; }

    /// <summary>First byte (page aligned).</summary>
    public ulong Start { get; }

    /// <summary>Bytes covered.</summary>
    public ulong Length { get; }

    /// <summary>End (exclusive).</summary>
    public ulong End => Start + Length;

    /// <summary>Access flags.</summary>
    public AccessFlags Access { get; }

    /// <summary>Whether this is an implicit ODP MR over the whole address space.</summary>
    public bool IsImplicit { get; }

    /// <summary>Whether any write access was asked (the umem is then writable).</summary>
    public bool Writable => (Access & (AccessFlags.LocalWrite | AccessFlags.RemoteWrite | AccessFlags.RemoteAtomic)) != 0;

    /// <summary>The per-MR ODP counters (B.10).</summary>
    public OdpCounters Counters { get; } = new();

    /// <summary>The umem of an explicit MR.</summary>
    public OdpUmem? Umem { get; internal set; }

    /// <summary>The children of an implicit MR.</summary>
    public ImplicitOdp? Implicit { get; internal set; }

    /// <summary>The mkey use count (1 = only the registration's own reference).</summary>
    public int UseCount => Volatile.Read(ref _useCount);

    /// <summary>Whether deregistration has started (the key is gone from the table).</summary>
    public bool IsDead { get; private set; }

    /// <summary>Every counter: the five of B.10, the driver's own, and the generated fault loop's sequence retries.</summary>
    public IReadOnlyDictionary<string, long> Snapshot()
    {
        var counters = new Dictionary<string, long>(Counters.Snapshot());
        long retries = 0, mapped = 0;
        if (Umem is { } u) { retries += u.FaultRetries; mapped += u.MappedPages; }
        if (Implicit is { } i) { retries += i.FaultRetries; mapped += i.MappedPages; }
        counters["seq_retries"] = retries;
        counters["mapped_pages"] = mapped;
        return counters;
    }

    /// <summary>A reference for an asynchronous user; only called with the device's key table locked, while the key is in it.</summary>
    internal void Get() => Interlocked.Increment(ref _useCount);

    /// <summary>Drops a reference; the last one wakes the deregistration.</summary>
    internal void Put()
    {
        if (Interlocked.Decrement(ref _useCount) == 0) _drained.WakeUpAll();
    }

    /// <summary>mlx5r_deref_wait_odp_mkey: drop the registration's reference and sleep until every user is done. The key must already be out of the table.</summary>
    internal void DropAndWait()
    {
        IsDead = true;
        Put();
        _drained.WaitEvent(this, static mr => Volatile.Read(ref mr._useCount) == 0);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{(IsImplicit ? "implicit " : "")}ODP MR key 0x{Key:x} [0x{Start:x}, +0x{Length:x})";
}
