using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.Memory;

namespace Hmm.Samples.Mlx5;

public sealed partial class Mlx5IbDevice
{
    /// <summary>
    /// A stalled QP raises a page-fault EQE and sleeps until the driver resumes it. The fault runs on
    /// the workqueue (or inline with <see cref="Mlx5Options.InlineFaults"/>). Returns the resume:
    /// Ok (replay the access), EAGAIN (raced, replay and fault again), or the error the QP fails with.
    /// </summary>
    [MayBlock]
    internal Errno RaisePageFault(PageFaultCompletion fault, in PageFaultEvent ev)
    {
        fault.Arm(ev);
        Device.Meters.AddFaults(1);
        if (Options.InlineFaults)
        {
            ServiceQueuedFault(fault);
            return fault.Result;
        }
        // A full EQ drops the EQE; the hardware raises it again.
        while (!_wq.RaiseFault(fault)) Thread.Yield();
        fault.WaitResumed();
        return fault.Result;
    }

    /// <summary>
    /// The fault work (B.5): find the mkey with a reference (unknown key → resume with error), bounds
    /// check, <c>pagefault_mr</c> through the generated fault path, account B.10, resume — without error
    /// when the fault raced an invalidation (the hardware retries). An RDMA responder fault of unknown
    /// length maps one packet, resumes, and only then maps the prefetch window (B.5.7).
    /// </summary>
    private void ServiceQueuedFault(PageFaultCompletion fault)
    {
        var ev = fault.Event;
        var mr = FindOdpMkey(ev.Key);
        if (mr == null)
        {
            Interlocked.Increment(ref _unknownKeyFaults);
            fault.Resume(Errno.EFAULT);
            return;
        }
        try
        {
            Interlocked.Increment(ref _faultsServiced);
            FaultInFlight?.Invoke(ev);
            bool unknownLength = ev.Kind == PageFaultKind.Rdma && ev.Length == 0;
            ulong start = ev.Address;
            ulong end = unknownLength ? Page.AlignDown(start) + (ulong)Options.PacketBytes : start + ev.Length;
            if (start < mr.Start || end > mr.End || end <= start || (ev.Write && !mr.Writable))
            {
                mr.Counters.AddResumeWithError();
                fault.Resume(ev.Write && !mr.Writable ? Errno.EACCES : Errno.EFAULT);
                return;
            }
            var mode = ev.Write ? OdpMapMode.Write : OdpMapMode.Read;
            Errno e;
            long mapped;
            if (ev.Kind == PageFaultKind.Memory && (ev.PrefetchBefore | ev.PrefetchAfter) != 0)
            {
                // Memory-scheme fault: [VA − before, VA + demand + after], clipped to the MR; on failure the demand alone.
                ulong wideStart = Math.Max(mr.Start, Page.AlignDown(start - Math.Min(start, ev.PrefetchBefore)));
                ulong wideEnd = Math.Min(mr.End, end + ev.PrefetchAfter);
                e = PagefaultMr(mr, wideStart, wideEnd, mode, out mapped);
                if (e != Errno.Ok) e = PagefaultMr(mr, start, end, mode, out mapped);
            }
            else e = PagefaultMr(mr, start, end, mode, out mapped);
            Device.Clock.Advance(Device.Options.Costs.OdpFaultServiceNs(pathological: false));
            var resume = Account(mr, e, mapped);
            fault.Resume(resume);
            if (unknownLength && resume == Errno.Ok) PrefetchAfterResume(mr, Page.AlignDown(end + Page.Size - 1), mode);
        }
        finally { mr.Put(); }
    }

    /// <summary>Accounts one fault operation and decides the resume.</summary>
    private static Errno Account(MemoryRegion mr, Errno e, long mapped)
    {
        if (e == Errno.Ok)
        {
            mr.Counters.AddFault(mapped);
            return Errno.Ok;
        }
        if (e is Errno.EBUSY or Errno.EAGAIN)
        {
            // -EAGAIN: raced an invalidation past the deadline; resume without error, the HW retries.
            mr.Counters.AddRetries(1);
            mr.Counters.AddResumeToRetry();
            return Errno.EAGAIN;
        }
        mr.Counters.AddResumeWithError();
        return e;
    }

    /// <summary>The post-resume window: up to <see cref="Mlx5Options.PrefetchWindowBytes"/> after the packet; a failure cancels it.</summary>
    private void PrefetchAfterResume(MemoryRegion mr, ulong from, OdpMapMode mode)
    {
        ulong to = Math.Min(from + Options.PrefetchWindowBytes - (ulong)Options.PacketBytes, mr.End);
        if (from >= to) return;
        if (PagefaultMr(mr, from, to, mode, out long mapped) != Errno.Ok) return;
        mr.Counters.AddFault(mapped);
        mr.Counters.AddPrefetchWindow(mapped);
    }

    /// <summary>
    /// <c>pagefault_mr</c>: an explicit MR faults its umem; an implicit one walks its 1 GiB children,
    /// creating them on first touch. <paramref name="mapped"/> is the pages now mapped.
    /// </summary>
    [MayBlock]
    internal static Errno PagefaultMr(MemoryRegion mr, ulong start, ulong end, OdpMapMode mode, out long mapped)
    {
        if (mr.Umem is { } umem) return umem.MapRange(start, end, mode, out mapped);
        mapped = 0;
        for (ulong a = start; a < end;)
        {
            var e = mr.Implicit!.AcquireOrCreate(a, out var child);
            if (e != Errno.Ok) return e;
            ulong stop = Math.Min(end, child!.End);
            long m;
            try { e = child.MapRange(a, stop, mode, out m); }
            finally { ImplicitOdp.Release(child); }
            mapped += m;
            if (e != Errno.Ok) return e;
            a = stop;
        }
        return Errno.Ok;
    }

    /// <summary>pagefault_mr for a write of [<paramref name="start"/>, <paramref name="end"/>) on <paramref name="mr"/>, exactly as the fault work runs it, without a QP (tools, tests).</summary>
    [MayBlock]
    public static Errno Pagefault(MemoryRegion mr, ulong start, ulong end)
    {
        ArgumentNullException.ThrowIfNull(mr);
        return PagefaultMr(mr, start, end, OdpMapMode.Write, out _);
    }

    /// <summary>
    /// ib_advise_mr (B.8): PREFETCH maps read-only (downgrade), PREFETCH_WRITE writable (EINVAL on a
    /// read-only MR), PREFETCH_NO_FAULT only what is present. Only MRs of <paramref name="pd"/> (EINVAL
    /// otherwise). With <paramref name="flush"/> the work is done here; otherwise it is queued with the
    /// mkey references held until it ran. Counts <c>page_prefetch</c>.
    /// </summary>
    [MayBlock]
    public Errno AdviseMr(ProtectionDomain pd, AdviseKind advice, bool flush, ReadOnlySpan<Sge> sges)
    {
        ArgumentNullException.ThrowIfNull(pd);
        var regions = new MemoryRegion[sges.Length];
        int taken = 0;
        var e = Errno.Ok;
        for (; taken < sges.Length; taken++)
        {
            var mr = FindOdpMkey(sges[taken].Key);
            if (mr == null) { e = Errno.EINVAL; break; }
            regions[taken] = mr;
            var sge = sges[taken];
            if (mr.Pd != pd || sge.Address < mr.Start || sge.Address + sge.Length > mr.End || sge.Length == 0
                || (advice == AdviseKind.PrefetchWrite && !mr.Writable))
            {
                taken++;
                e = Errno.EINVAL;
                break;
            }
        }
        if (e != Errno.Ok)
        {
            for (int i = 0; i < taken; i++) regions[i].Put();
            return e;
        }
        var mode = advice switch
        {
            AdviseKind.Prefetch => OdpMapMode.Downgrade,
            AdviseKind.PrefetchWrite => OdpMapMode.Write,
            _ => OdpMapMode.Snapshot,
        };
        if (flush) return Prefetch(regions, sges.ToArray(), mode);
        _wq.Queue(new PrefetchWork(regions, sges.ToArray(), mode));
        return Errno.Ok;
    }

    /// <summary>The prefetch work: each SGE through <c>pagefault_mr</c>, then the references dropped.</summary>
    private static Errno Prefetch(MemoryRegion[] regions, Sge[] sges, OdpMapMode mode)
    {
        var first = Errno.Ok;
        for (int i = 0; i < sges.Length; i++)
        {
            try
            {
                var e = PagefaultMr(regions[i], Page.AlignDown(sges[i].Address), sges[i].Address + sges[i].Length, mode, out long mapped);
                if (e == Errno.Ok) regions[i].Counters.AddPrefetch(mapped);
                else if (first == Errno.Ok) first = e;
            }
            finally { regions[i].Put(); }
        }
        return first;
    }
}
