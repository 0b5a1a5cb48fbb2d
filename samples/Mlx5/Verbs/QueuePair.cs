using Hmm.Dsl;
using Hmm.Runtime;

namespace Hmm.Samples.Mlx5;

/// <summary>
/// A reliable-connected queue pair (<c>struct ib_qp</c>) and the hardware that executes its work
/// requests: RDMA WRITE, RDMA READ and the two atomics, moved over a <see cref="LoopbackFabric"/> to
/// the connected QP (another process, possibly another NIC). Data moves in bursts from the source's
/// translation straight into the destination's (the loopback wire, <see cref="OdpUmem.Copy"/>); a burst
/// that finds no translation stalls the QP, which raises a page fault on the NIC owning the key —
/// a WQE fault on the requester side, an RDMA fault (length unknown for WRITE) on the responder side
/// — and sleeps until the driver resumes it (drivers.md B.4, B.12 item 1).
/// </summary>
/// <remarks>One thread drives a QP at a time (as one send queue is processed in order).</remarks>
public sealed class QueuePair
{
    // Consecutive faults that made no progress before the QP gives up (a resume that never maps).
    private const int MaxFaultsWithoutProgress = 10_000;

    private readonly PageFaultCompletion _fault;
    private long _stalls, _bytes;

    internal QueuePair(Mlx5IbDevice nic, ProtectionDomain pd, uint number, PageFaultCompletion fault)
    {
        Nic = nic;
        Pd = pd;
        Number = number;
        _fault = fault;
    }

    /// <summary>The NIC.</summary>
    public Mlx5IbDevice Nic { get; }

    /// <summary>The protection domain.</summary>
    public ProtectionDomain Pd { get; }

    /// <summary>The QP number.</summary>
    public uint Number { get; }

    /// <summary>The connected QP, once <see cref="LoopbackFabric.Connect"/> ran.</summary>
    public QueuePair? Remote { get; internal set; }

    /// <summary>Times this QP stalled on a missing translation and raised a page fault.</summary>
    public long Stalls => Interlocked.Read(ref _stalls);

    /// <summary>Payload bytes moved by this QP's work requests.</summary>
    public long BytesTransferred => Interlocked.Read(ref _bytes);

    /// <summary>
    /// IB_WR_RDMA_WRITE: <paramref name="local"/> (an lkey of this QP's PD) into the peer's
    /// [<paramref name="remoteAddress"/>, +length) under <paramref name="rkey"/> (REMOTE_WRITE).
    /// EINVAL: not connected / bad local key; EACCES: remote access error; EFAULT: a fault failed.
    /// </summary>
    [MayBlock]
    public Errno RdmaWrite(Sge local, ulong remoteAddress, uint rkey)
        => Transfer(local, remoteAddress, rkey, toRemote: true);

    /// <summary>IB_WR_RDMA_READ: the peer's [<paramref name="remoteAddress"/>, +length) (REMOTE_READ) into <paramref name="local"/> (needs LOCAL_WRITE).</summary>
    [MayBlock]
    public Errno RdmaRead(Sge local, ulong remoteAddress, uint rkey)
        => Transfer(local, remoteAddress, rkey, toRemote: false);

    /// <summary>
    /// IB_WR_ATOMIC_FETCH_AND_ADD / CMP_AND_SWP on the peer's 8-byte word at <paramref name="remoteAddress"/>
    /// (REMOTE_ATOMIC); the original value is written to <paramref name="local"/> (8 bytes, LOCAL_WRITE)
    /// and returned in <paramref name="original"/>.
    /// </summary>
    [MayBlock]
    public Errno Atomic(Sge local, ulong remoteAddress, uint rkey, RdmaAtomicOp op, ulong operand, ulong compare, out ulong original)
    {
        original = 0;
        if (local.Length != 8 || (remoteAddress & 7) != 0) return Errno.EINVAL;
        var e = Open(local, remoteAddress, 8, rkey, AccessFlags.RemoteAtomic, needLocalWrite: true, out var lmr, out var rmr);
        if (e != Errno.Ok) return e;
        try
        {
            var responder = Remote!;
            int stalls = 0;
            while (!DmaAtomic(rmr!, remoteAddress, op, operand, compare, out original))
            {
                e = Stall(responder.Nic, responder._fault, new PageFaultEvent(PageFaultKind.Rdma, rkey, remoteAddress, 8, Write: true), ref stalls);
                if (e != Errno.Ok) return e;
            }
            Span<byte> word = stackalloc byte[8];
            BitConverter.TryWriteBytes(word, original);
            e = Move(lmr!, local.Key, local.Address, word, write: true, PageFaultKind.Wqe, 8);
            if (e == Errno.Ok) Interlocked.Add(ref _bytes, 8);
            return e;
        }
        finally
        {
            lmr!.Put();
            rmr!.Put();
        }
    }

    private Errno Transfer(Sge local, ulong remoteAddress, uint rkey, bool toRemote)
    {
        var e = Open(local, remoteAddress, local.Length, rkey, toRemote ? AccessFlags.RemoteWrite : AccessFlags.RemoteRead, needLocalWrite: !toRemote, out var lmr, out var rmr);
        if (e != Errno.Ok) return e;
        try
        {
            var responder = Remote!;
            // WRITE: the requester's DMA read of its SGE, the responder's DMA write (RDMA fault, length unknown).
            // READ: the responder's DMA read (the request carries the length), the requester's DMA write.
            var src = toRemote ? new Side(lmr!, local.Key, local.Address, this, PageFaultKind.Wqe) : new Side(rmr!, rkey, remoteAddress, responder, PageFaultKind.Rdma);
            var dst = toRemote ? new Side(rmr!, rkey, remoteAddress, responder, PageFaultKind.Rdma) : new Side(lmr!, local.Key, local.Address, this, PageFaultKind.Wqe);
            ulong length = local.Length, done = 0;
            int stalls = 0;
            while (done < length)
            {
                int n = (int)Math.Min((ulong)Nic.Options.BurstBytes, length - done);
                var su = Resolve(src.Mr, src.Address + done, ref n);
                var du = su == null ? null : Resolve(dst.Mr, dst.Address + done, ref n);
                int moved = 0;
                bool dstStalled = su != null;
                try
                {
                    if (su != null && du != null) moved = OdpUmem.Copy(su, src.Address + done, du, dst.Address + done, n, out dstStalled);
                }
                finally
                {
                    if (su?.Parent != null) ImplicitOdp.Release(su);
                    if (du?.Parent != null) ImplicitOdp.Release(du);
                }
                if (moved > 0)
                {
                    Nic.ChargeTransfer(moved);
                    Interlocked.Add(ref _bytes, moved);
                    done += (ulong)moved;
                    stalls = 0;
                }
                if (moved == n) continue;
                var side = dstStalled ? dst : src;
                ulong faultLength = toRemote && dstStalled ? 0 : length - done; // an RDMA WRITE responder cannot tell the length
                e = Stall(side.Qp.Nic, side.Qp._fault, new PageFaultEvent(side.Kind, side.Key, side.Address + done, faultLength, dstStalled), ref stalls);
                if (e != Errno.Ok) return e;
            }
            return Errno.Ok;
        }
        finally
        {
            lmr!.Put();
            rmr!.Put();
        }
    }

    /// <summary>One end of a transfer: its MR and key, base address, the QP (and NIC) that faults for it, and the fault sub-type.</summary>
    private readonly record struct Side(MemoryRegion Mr, uint Key, ulong Address, QueuePair Qp, PageFaultKind Kind);

    /// <summary>The umem translating <paramref name="va"/> (an implicit MR's child, with a use taken; <paramref name="n"/> clipped to it), or null for the null mkey.</summary>
    private static OdpUmem? Resolve(MemoryRegion mr, ulong va, ref int n)
    {
        if (mr.Umem is { } umem) return umem;
        var child = mr.Implicit!.Acquire(va);
        if (child != null) n = (int)Math.Min((ulong)n, child.End - va);
        return child;
    }

    /// <summary>Looks both keys up (references taken on success): local key in this QP's PD, remote key in the peer's PD with <paramref name="remoteAccess"/>.</summary>
    private Errno Open(Sge local, ulong remoteAddress, ulong length, uint rkey, AccessFlags remoteAccess, bool needLocalWrite, out MemoryRegion? lmr, out MemoryRegion? rmr)
    {
        rmr = null;
        lmr = null;
        if (Remote is not { } responder || local.Length == 0) return Errno.EINVAL;
        lmr = Nic.FindOdpMkey(local.Key);
        if (lmr == null || lmr.Pd != Pd || local.Address < lmr.Start || local.Address + local.Length > lmr.End
            || (needLocalWrite && (lmr.Access & AccessFlags.LocalWrite) == 0))
        {
            lmr?.Put();
            lmr = null;
            return Errno.EINVAL;
        }
        rmr = responder.Nic.FindOdpMkey(rkey);
        if (rmr == null || rmr.Pd != responder.Pd || remoteAddress < rmr.Start || remoteAddress + length > rmr.End || (rmr.Access & remoteAccess) == 0)
        {
            rmr?.Put();
            rmr = null;
            lmr.Put();
            lmr = null;
            return Errno.EACCES; // remote access error
        }
        return Errno.Ok;
    }

    /// <summary>One side's DMA of a burst through <paramref name="mr"/>, stalling on this QP's NIC for every missing translation.</summary>
    private Errno Move(MemoryRegion mr, uint key, ulong va, Span<byte> buffer, bool write, PageFaultKind kind, ulong opLength)
    {
        int done = 0, stalls = 0;
        while (true)
        {
            done += write ? Dma.Write(mr, va + (ulong)done, buffer[done..]) : Dma.Read(mr, va + (ulong)done, buffer[done..]);
            if (done == buffer.Length) return Errno.Ok;
            ulong length = kind == PageFaultKind.Rdma && opLength == 0 ? 0 : Math.Max((ulong)(buffer.Length - done), opLength - (ulong)done);
            var e = Stall(Nic, _fault, new PageFaultEvent(kind, key, va + (ulong)done, length, write), ref stalls);
            if (e != Errno.Ok) return e;
        }
    }

    /// <summary>The QP stalls, the NIC raises the fault, the driver resumes; EAGAIN (raced) replays. Gives up after too many faults without progress.</summary>
    private Errno Stall(Mlx5IbDevice nic, PageFaultCompletion fault, in PageFaultEvent ev, ref int stalls)
    {
        Interlocked.Increment(ref _stalls);
        if (++stalls > MaxFaultsWithoutProgress) return Errno.EFAULT;
        var raised = ev;
        if (nic.Options.MemoryScheme)
        {
            // A memory-scheme device reports the demand (at least the page) and how much to prefetch after it.
            ulong demand = Math.Max(ev.Length, (ulong)Hmm.Runtime.Memory.Page.Size - (ev.Address & Hmm.Runtime.Memory.Page.OffsetMask));
            raised = new PageFaultEvent(PageFaultKind.Memory, ev.Key, ev.Address, demand, ev.Write) { PrefetchAfter = ev.Length == 0 ? nic.Options.PrefetchWindowBytes : 0 };
        }
        var e = nic.RaisePageFault(fault, raised);
        return e == Errno.EAGAIN ? Errno.Ok : e;
    }

    private static bool DmaAtomic(MemoryRegion mr, ulong va, RdmaAtomicOp op, ulong operand, ulong compare, out ulong original)
    {
        if (mr.Umem is { } umem) return umem.DmaAtomic(va, op, operand, compare, out original);
        original = 0;
        var child = mr.Implicit!.Acquire(va);
        if (child == null) return false;
        try { return child.DmaAtomic(va, op, operand, compare, out original); }
        finally { ImplicitOdp.Release(child); }
    }
}

/// <summary>
/// The wire between two NIC ports in one machine: connects two RC queue pairs (possibly of two
/// NICs and two processes) so each one's work requests reach the other's memory.
/// </summary>
public static class LoopbackFabric
{
    /// <summary>Connects <paramref name="a"/> and <paramref name="b"/> (both to RTS).</summary>
    public static void Connect(QueuePair a, QueuePair b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        a.Remote = b;
        b.Remote = a;
    }
}
