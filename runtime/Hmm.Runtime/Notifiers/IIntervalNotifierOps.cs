using Hmm.Dsl;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Notifiers;

/// <summary>
/// Simulates <c>struct mmu_interval_notifier_ops</c>: what a driver supplies with an
/// <see cref="IntervalNotifier"/> (reference/kernel-hmm.md A.6, rule HMM-R07).
/// </summary>
public interface IIntervalNotifierOps
{
    /// <summary>
    /// <c>invalidate</c>: the CPU page-table entries of <paramref name="range"/> are about to
    /// change. On return the device must no longer use any of its entries inside the range.
    /// The driver takes its update lock U (blocking only when <see cref="NotifierRange.Blockable"/>;
    /// otherwise it try-locks and returns false on contention), calls
    /// <see cref="IntervalNotifier.SetSeq"/>(<paramref name="curSeq"/>) unconditionally under U,
    /// and tears down its device mappings. Returning false is only allowed for a non-blockable
    /// range (HMM-R08).
    /// </summary>
    /// <param name="notifier">The interval being invalidated.</param>
    /// <param name="range">The changing range (may extend beyond the interval).</param>
    /// <param name="curSeq">The mm's current (odd) invalidation sequence.</param>
    [NotifierCallback(Invalidate = true)]
    bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq);
}
