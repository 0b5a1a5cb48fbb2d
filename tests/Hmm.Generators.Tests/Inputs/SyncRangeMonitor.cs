namespace Samples.Sync;

/// <summary>A mirror synchronised by a range monitor checked under the update lock.</summary>
[HmmDriver("monitored", Sync = MirrorSync.RangeMonitor, FaultTimeoutMs = 500)]
public sealed partial class RangeMonitorDriver
{
    public long Mapped { get; private set; }

    [OnMirrorFault]
    private void Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => Mapped += hmmPfns.Length;
}
