namespace Samples.Sync;

/// <summary>A mirror synchronised by a range lock held between the snapshot and the device update.</summary>
[HmmDriver("ranged", Sync = MirrorSync.RangeLock)]
public sealed partial class RangeLockDriver
{
    public long Mapped { get; private set; }

    [OnMirrorFault]
    private void Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => Mapped += hmmPfns.Length;
}
