using Hmm.Runtime.Mm;
using Hmm.Runtime.Locking;
using Hmm.Dsl;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Notifiers;

namespace Hmm.Runtime.Mirror;

/// <summary>
/// Simulates <c>struct hmm_range</c> (include/linux/hmm.h; reference/kernel-hmm.md A.4): the
/// input and output of <see cref="Fault"/> (<c>hmm_range_fault</c>). A driver keeps one per mirroring context
/// and reuses it; <see cref="Fault"/> allocates nothing.
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

    /// <summary>
    /// Simulates <c>hmm_range_fault(range)</c>: fills <see cref="HmmRange.HmmPfns"/> with the CPU page-table state of
    /// [<see cref="HmmRange.Start"/>, <see cref="HmmRange.End"/>), faulting pages in (through
    /// handle_mm_fault, as a remote access) where the effective request
    /// (<c>(input &amp; PfnFlagsMask) | DefaultFlags</c>) asks for more than the CPU has
    /// (reference/kernel-hmm.md B.4). Takes no page references.
    /// </summary>
    /// <remarks>
    /// <para><b>Locking.</b> The caller holds the mm's <see cref="AddressSpace.MmapLock"/> (read or
    /// write) for the whole call (HMM-R01; asserted, like <c>mmap_assert_locked</c>), took
    /// <see cref="HmmRange.NotifierSeq"/> from <see cref="IntervalNotifier.ReadBegin"/> before
    /// taking it (HMM-R02, HMM-R03), and holds neither its update lock U nor any spinlock
    /// (HMM-R04): faults sleep, allocate and raise invalidations whose callbacks take U.</para>
    /// <para><b>May block.</b> Faults, migration-entry waits and the invalidations they cause.</para>
    /// <para><b>Results.</b> <see cref="Errno.Ok"/>; <see cref="Errno.EBUSY"/> when
    /// <c>mmu_interval_check_retry</c> saw a collision before a walk pass (drop the mmap lock and
    /// restart from ReadBegin, HMM-R05); <see cref="Errno.EFAULT"/> when a page required to be
    /// valid cannot be (no VMA, IO/PFNMAP/unreadable VMA, special page, poisoned or bad entry, a
    /// failed fault); <see cref="Errno.EPERM"/> when a write fault is needed in a VMA without
    /// VM_WRITE. On success every entry holds an output; on failure entries before the failing
    /// one hold outputs and the rest their inputs. Sticky bits (<see cref="HmmPfn.InOutFlags"/>)
    /// are preserved; every other bit of a produced entry is overwritten. Output words are decoded
    /// only after a successful <see cref="IntervalNotifier.ReadRetry"/> under U (HMM-R06, HMM-R14).</para>
    /// <para>Allocates nothing.</para>
    /// </remarks>
    /// <exception cref="KernelBugException">The mmap lock is not held (HMM-R01); the range is
    /// misaligned, empty, or <see cref="HmmRange.HmmPfns"/> has the wrong length (HMM-R16); the
    /// notifier is missing or not inserted (HMM-R02).</exception>
    [MayBlock]
    [RequiresShared("Notifier.Mm.MmapLock")]
    [Snapshot]
    public Errno Fault() => HmmRangeFault.Run(this);

    /// <summary>Number of pages in the range.</summary>
    public int PageCount => (int)((End - Start) >> Page.Shift);

    /// <inheritdoc/>
    public override string ToString() => $"hmm_range [0x{Start:x}, 0x{End:x}) default 0x{DefaultFlags:x} mask 0x{PfnFlagsMask:x}";
}
