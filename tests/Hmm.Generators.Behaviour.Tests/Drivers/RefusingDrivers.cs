using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.Mirror;

namespace Hmm.Generators.Behaviour.Tests.Drivers;

/// <summary>
/// What the three refusing drivers share: an errno-returning <c>[OnMirrorFault]</c> (dmirror_do_fault's
/// -EFAULT) that refuses the piece holding <see cref="RefuseAt"/> and records every piece it saw.
/// </summary>
internal interface IRefusingDriver
{
    /// <summary>An address whose piece the callback refuses with EFAULT (0: none).</summary>
    ulong RefuseAt { get; set; }

    /// <summary>Pages per piece the callback saw, in order (the refused one included).</summary>
    List<int> Pieces { get; }

    Errno Fault(ulong start, ulong end, bool write);

    Errno MakeExclusive(ulong start, ulong end);

    void Detach();
}

/// <summary>Sequence retry, 32-page pieces, errno-returning <c>[OnMirrorFault]</c>.</summary>
[HmmDriver("refuseseq", FaultBatchPages = 32)]
internal sealed partial class RefusingSeqDriver : IRefusingDriver
{
    public ulong RefuseAt { get; set; }
    public List<int> Pieces { get; } = [];

    [OnMirrorFault]
    private Errno Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => Refusing.Map(this, range, hmmPfns);
}

/// <summary>Range lock, 32-page pieces, errno-returning <c>[OnMirrorFault]</c>.</summary>
[HmmDriver("refuselock", Sync = MirrorSync.RangeLock, FaultBatchPages = 32)]
internal sealed partial class RefusingLockDriver : IRefusingDriver
{
    public ulong RefuseAt { get; set; }
    public List<int> Pieces { get; } = [];

    [OnMirrorFault]
    private Errno Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => Refusing.Map(this, range, hmmPfns);
}

/// <summary>Range monitor, 32-page pieces, errno-returning <c>[OnMirrorFault]</c>.</summary>
[HmmDriver("refusemon", Sync = MirrorSync.RangeMonitor, FaultBatchPages = 32)]
internal sealed partial class RefusingMonitorDriver : IRefusingDriver
{
    public ulong RefuseAt { get; set; }
    public List<int> Pieces { get; } = [];

    [OnMirrorFault]
    private Errno Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => Refusing.Map(this, range, hmmPfns);
}

internal static class Refusing
{
    public static Errno Map(IRefusingDriver driver, HmmRange range, ReadOnlySpan<ulong> hmmPfns)
    {
        driver.Pieces.Add(hmmPfns.Length);
        return driver.RefuseAt >= range.Start && driver.RefuseAt < range.End ? Errno.EFAULT : Errno.Ok;
    }
}
