using Hmm.Runtime.Memory;
using Hmm.Runtime.Notifiers;

namespace Hmm.Runtime.Mirror;

/// <summary>
/// Simulates <c>struct hmm_range</c> (include/linux/hmm.h; reference/kernel-hmm.md A.4): the
/// input and output of <see cref="Hmm.RangeFault"/>. A driver keeps one per mirroring context
/// and reuses it; <see cref="Hmm.RangeFault"/> allocates nothing.
/// </summary>
public sealed class HmmRange
{
    /// <summary>An empty range; set every field before use.</summary>
    public HmmRange() { }

    /// <summary>
    /// A range over [<paramref name="start"/>, <paramref name="end"/>) watched by
    /// <paramref name="notifier"/>, with a fresh <see cref="HmmPfns"/> array of the right size.
    /// </summary>
    public HmmRange(IntervalNotifier notifier, ulong start, ulong end)
    {
        ArgumentNullException.ThrowIfNull(notifier);
        if (end <= start || !Page.IsAligned(start) || !Page.IsAligned(end))
            throw new ArgumentException($"[0x{start:x}, 0x{end:x}) is not a non-empty page-aligned range");
        Notifier = notifier;
        Start = start;
        End = end;
        HmmPfns = new ulong[(end - start) >> Page.Shift];
    }

    /// <summary><c>notifier</c>: the interval notifier covering the range; also names the mm.</summary>
    public IntervalNotifier? Notifier { get; set; }

    /// <summary><c>notifier_seq</c>: what <see cref="IntervalNotifier.ReadBegin"/> returned for this attempt (HMM-R02).</summary>
    public ulong NotifierSeq { get; set; }

    /// <summary><c>start</c>: first address (inclusive, page aligned).</summary>
    public ulong Start { get; set; }

    /// <summary><c>end</c>: end address (exclusive, page aligned).</summary>
    public ulong End { get; set; }

    /// <summary><c>hmm_pfns</c>: exactly (End − Start) / 4096 words; request flags in, pfn + flags out (HMM-R16).</summary>
    public ulong[] HmmPfns { get; set; } = [];

    /// <summary><c>default_flags</c>: request flags applied to every entry.</summary>
    public ulong DefaultFlags { get; set; }

    /// <summary><c>pfn_flags_mask</c>: which bits of each entry's input are honoured.</summary>
    public ulong PfnFlagsMask { get; set; }

    /// <summary><c>dev_private_owner</c>: device-private pages of this pgmap owner are reported, never faulted (HMM-R17).</summary>
    public object? DevPrivateOwner { get; set; }

    /// <summary>Number of pages in the range.</summary>
    public int PageCount => (int)((End - Start) >> Page.Shift);

    /// <inheritdoc/>
    public override string ToString() => $"hmm_range [0x{Start:x}, 0x{End:x}) default 0x{DefaultFlags:x} mask 0x{PfnFlagsMask:x}";
}
