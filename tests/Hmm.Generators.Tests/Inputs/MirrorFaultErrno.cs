namespace Samples.Refusing;

/// <summary>An errno-returning [OnMirrorFault] (dmirror_do_fault's -EFAULT) under the default sequence retry: a refused piece ends Fault and MakeExclusive.</summary>
[HmmDriver("refusing", UpdateLock = nameof(_update), FaultBatchPages = 32)]
public sealed partial class RefusingDriver
{
    private readonly KernelMutex _update = new("refusing.update");

    [GuardedBy(nameof(_update))] private long _mapped;

    public long MappedPages => _mapped;

    [OnMirrorFault]
    private Errno Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns)
    {
        foreach (ulong word in hmmPfns)
            if (!HmmPfn.IsValid(word)) return Errno.EFAULT;
        _mapped += hmmPfns.Length;
        return Errno.Ok;
    }
}

/// <summary>The same under the range lock.</summary>
[HmmDriver("refusinglock", Sync = MirrorSync.RangeLock)]
public sealed partial class RefusingRangeLockDriver
{
    [OnMirrorFault]
    private Errno Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => hmmPfns.Length > 0 ? Errno.Ok : Errno.EFAULT;
}

/// <summary>The same under the range monitor.</summary>
[HmmDriver("refusingmonitor", Sync = MirrorSync.RangeMonitor)]
public sealed partial class RefusingRangeMonitorDriver
{
    [OnMirrorFault]
    private Errno Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => hmmPfns.Length > 0 ? Errno.Ok : Errno.EFAULT;
}
