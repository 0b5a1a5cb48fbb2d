using Hmm.Runtime;
using Hmm.Runtime.Locking;

namespace Hmm.Samples.Mlx5;

/// <summary>The sub-type of a NIC page fault EQE (drivers.md B.4).</summary>
public enum PageFaultKind
{
    /// <summary>A requester or responder WQE fault: the driver parses the WQE's scatter/gather list and faults each segment.</summary>
    Wqe,

    /// <summary>An RDMA responder fault: rkey, VA, operation length (0 = unknown: map one packet, resume, prefetch after).</summary>
    Rdma,

    /// <summary>A memory-scheme fault: mkey, VA, demand bytes plus prefetch-before / prefetch-after.</summary>
    Memory,
}

/// <summary>One decoded page-fault EQE.</summary>
/// <param name="Kind">The sub-type.</param>
/// <param name="Key">The lkey / rkey / mkey that missed.</param>
/// <param name="Address">The faulting virtual address.</param>
/// <param name="Length">Bytes the operation needs from <paramref name="Address"/> (0 = unknown, RDMA responder).</param>
/// <param name="Write">Whether the access writes.</param>
public readonly record struct PageFaultEvent(PageFaultKind Kind, uint Key, ulong Address, ulong Length, bool Write)
{
    /// <summary>Memory-scheme faults: bytes to map before <see cref="Address"/> as well (4 KiB units on the hardware).</summary>
    public ulong PrefetchBefore { get; init; }

    /// <summary>Memory-scheme faults: bytes to map after the demand as well.</summary>
    public ulong PrefetchAfter { get; init; }
}

/// <summary>
/// A stalled queue pair's pending page fault: the EQE the hardware raised and the
/// <c>PAGE_FAULT_RESUME</c> it waits for (with or without the error flag). One per QP, reused: a
/// QP stalls on one fault at a time.
/// </summary>
public sealed class PageFaultCompletion
{
    private readonly WaitQueue _resumed;
    private volatile bool _done;

    internal PageFaultCompletion(WaitQueue resumed) => _resumed = resumed;

    /// <summary>The fault raised.</summary>
    public PageFaultEvent Event { get; internal set; }

    /// <summary>
    /// The resume: <see cref="Errno.Ok"/> (mapped, the access replays), <see cref="Errno.EAGAIN"/>
    /// (raced an invalidation: resumed without error, the hardware simply faults again) or another
    /// errno (resumed with the error flag: the operation fails).
    /// </summary>
    public Errno Result { get; private set; }

    internal void Arm(in PageFaultEvent ev)
    {
        Event = ev;
        _done = false;
    }

    internal void Resume(Errno result)
    {
        Result = result;
        _done = true;
        _resumed.WakeUpAll();
    }

    internal void WaitResumed() => _resumed.WaitEvent(this, static c => c._done);
}
