using Hmm.Dsl;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;

namespace Hmm.Generators.Behaviour.Tests.Drivers;

/// <summary>
/// A mirror of one range only (HmmDriver.RangedNotifier, like an mlx5 ODP umem over its MR), that
/// never filters MIGRATE events (FilterOwnMigrations = false: it migrates nothing itself).
/// </summary>
[HmmDriver("umem", UpdateLock = nameof(_umem), RangedNotifier = true, FilterOwnMigrations = false)]
internal sealed partial class RangedMirror
{
    private readonly KernelMutex _umem = new("rangedmirror.umem");

    [GuardedBy(nameof(_umem))] public long SeenInvalidations { get; private set; }
    [GuardedBy(nameof(_umem))] public ulong LowestSeen { get; private set; } = ulong.MaxValue;

    [OnInvalidate]
    private void Invalidate(in NotifierRange range)
    {
        SeenInvalidations++;
        if (range.Start < LowestSeen) LowestSeen = range.Start;
    }

    [OnMirrorFault] private void Map(HmmRange range, ReadOnlySpan<ulong> hmmPfns) { }
}
