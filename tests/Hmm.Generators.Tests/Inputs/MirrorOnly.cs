namespace Samples.Mirror;

/// <summary>A mirror-only driver (sequence retry, the default): the device maps what the CPU maps.</summary>
[HmmDriver("mirror", UpdateLock = nameof(_update))]
public sealed partial class MirrorOnlyDriver
{
    private readonly KernelMutex _update = new("mirror.update");

    [GuardedBy(nameof(_update))] private long _invalidated;
    [GuardedBy(nameof(_update))] private long _mapped;

    public long InvalidatedPages => _invalidated;
    public long MappedPages => _mapped;

    [OnInvalidate]
    private void Invalidate(in NotifierRange range) => _invalidated += (long)((range.End - range.Start) >> 12);

    [OnMirrorFault]
    private void Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns) => _mapped += hmmPfns.Length;

    [OnRelease]
    private void Release() => _mapped = 0;
}
