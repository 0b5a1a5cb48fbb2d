using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>
/// Bad arguments: each call returns what Linux returns and leaves the state unchanged (VMAs, bytes,
/// PTEs, RSS, UsedPages compared before/after), and raises no invalidation.
/// </summary>
public class BadInputTests
{
    private Machine _machine = null!;
    private Process _p = null!;
    private ulong _a;
    private MmSnapshot _snap = null!;
    private NotifierRecorder _rec = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = NewMachine(hugeTlbPages: 1);
        _p = _machine.CreateProcess("app");
        _a = _p.Mmap(4 * P, RW, PrivAnon);
        Fill(_p, _a, 3);
        _snap = new MmSnapshot(_p, _a, _a + P, _a + 2 * P, _a + 3 * P);
        _rec = NotifierRecorder.Attach(_p.Mm);
    }

    [TearDown]
    public void TearDown()
    {
        try
        {
            _snap.AssertUnchanged();
            Assert.That(_rec.Events, Is.Empty, "a failed or no-op call raised an invalidation");
            _rec.Dispose();
            _machine.CheckInvariants();
        }
        finally { _machine.Dispose(); }
    }

    private static void Expect(Errno errno, Action call)
        => Assert.That(Assert.Throws<ErrnoException>(() => call())!.Errno, Is.EqualTo(errno));

    [Test] public void Munmap_Misaligned_Einval() => Expect(Errno.EINVAL, () => _p.Munmap(_a + 1, P));
    [Test] public void Mprotect_Misaligned_Einval() => Expect(Errno.EINVAL, () => _p.Mprotect(_a + 8, P, Prot.Read));
    [Test] public void Madvise_Misaligned_Einval() => Expect(Errno.EINVAL, () => _p.Madvise(_a + 8, P, Advice.DontNeed));
    [Test] public void Mremap_Misaligned_Einval() => Expect(Errno.EINVAL, () => _p.Mremap(_a + 8, P, 2 * P, MremapFlags.MayMove));
    [Test] public void Mremap_FixedMisalignedTarget_Einval() => Expect(Errno.EINVAL, () => _p.Mremap(_a, P, P, MremapFlags.MayMove | MremapFlags.Fixed, _a - 16 * P + 1));
    [Test] public void MmapFixed_Misaligned_Einval() => Expect(Errno.EINVAL, () => _p.Mmap(P, RW, PrivAnon | MapFlags.Fixed, addr: _a + 1));
    [Test] public void MmapFixed_BelowMmapMinAddr_Eperm() => Expect(Errno.EPERM, () => _p.Mmap(P, RW, PrivAnon | MapFlags.Fixed, addr: 0x1000));
    [Test] public void Mmap_MisalignedFileOffset_Einval()
    {
        var f = _machine.CreateFile(2 * P);
        Expect(Errno.EINVAL, () => _p.Mmap(P, RW, MapFlags.Shared, f, offset: 100));
        f.Dispose();
    }

    [Test] public void Mmap_ZeroLength_Einval() => Expect(Errno.EINVAL, () => _p.Mmap(0, RW, PrivAnon));
    [Test] public void Munmap_ZeroLength_Einval() => Expect(Errno.EINVAL, () => _p.Munmap(_a, 0));
    [Test] public void Mprotect_ZeroLength_SucceedsAndDoesNothing() => _p.Mprotect(_a, 0, Prot.None);
    [Test] public void Madvise_ZeroLength_SucceedsAndDoesNothing() => _p.Madvise(_a, 0, Advice.DontNeed);
    [Test] public void Mremap_ZeroNewLength_Einval() => Expect(Errno.EINVAL, () => _p.Mremap(_a, P, 0, MremapFlags.MayMove));

    [Test] public void Mmap_OverflowingLength_Enomem() => Expect(Errno.ENOMEM, () => _p.Mmap(ulong.MaxValue - 10, RW, PrivAnon));
    [Test] public void Mmap_LengthBeyondTaskSize_Enomem() => Expect(Errno.ENOMEM, () => _p.Mmap(AddressSpace.TaskSize + P, RW, PrivAnon));
    [Test] public void Munmap_OverflowingLength_Einval() => Expect(Errno.EINVAL, () => _p.Munmap(_a, ulong.MaxValue - 10));
    [Test] public void Mprotect_OverflowingLength_Enomem() => Expect(Errno.ENOMEM, () => _p.Mprotect(_a, ulong.MaxValue - 10, Prot.Read));
    [Test] public void Madvise_OverflowingLength_Einval() => Expect(Errno.EINVAL, () => _p.Madvise(_a, ulong.MaxValue - 10, Advice.DontNeed));

    [Test] public void Munmap_OfAnUnmappedRange_SucceedsAndChangesNothing() => _p.Munmap(_a + 4 * P, 8 * P);
    [Test] public void Mprotect_OfAnUnmappedRange_Enomem() => Expect(Errno.ENOMEM, () => _p.Mprotect(_a + 8 * P, P, Prot.Read));
    [Test] public void Mprotect_OfAPartlyUnmappedRange_EnomemAndNothingChanged() => Expect(Errno.ENOMEM, () => _p.Mprotect(_a, 5 * P, Prot.Read));
    [Test] public void Mprotect_RangeWithAHole_EnomemAndNothingChanged() => Expect(Errno.ENOMEM, () => _p.Mprotect(_a - P, 2 * P, Prot.Read));
    [Test] public void Madvise_OfAPartlyUnmappedRange_EnomemAndNothingChanged() => Expect(Errno.ENOMEM, () => _p.Madvise(_a, 5 * P, Advice.DontNeed));
    [Test] public void Madvise_UnknownAdvice_Einval() => Expect(Errno.EINVAL, () => _p.Madvise(_a, P, (Advice)1234));
    [Test] public void Mprotect_UnknownProtBits_Einval() => Expect(Errno.EINVAL, () => _p.Mprotect(_a, P, (Prot)0x100));

    [Test] public void Mremap_UnknownFlags_Einval() => Expect(Errno.EINVAL, () => _p.Mremap(_a, P, P, (MremapFlags)0x40 | MremapFlags.MayMove));
    [Test] public void Mremap_FixedWithoutMayMove_Einval() => Expect(Errno.EINVAL, () => _p.Mremap(_a, P, P, MremapFlags.Fixed, _a - 16 * P));
    [Test] public void Mremap_DontUnmapWithoutMayMove_Einval() => Expect(Errno.EINVAL, () => _p.Mremap(_a, P, P, MremapFlags.DontUnmap));
    [Test] public void Mremap_DontUnmapWithSizeChange_Einval() => Expect(Errno.EINVAL, () => _p.Mremap(_a, P, 2 * P, MremapFlags.MayMove | MremapFlags.DontUnmap));
    [Test] public void Mremap_FixedOverlappingTheOldRange_Einval() => Expect(Errno.EINVAL, () => _p.Mremap(_a, 2 * P, 2 * P, MremapFlags.MayMove | MremapFlags.Fixed, _a + P));
    [Test] public void Mremap_OfAnUnmappedAddress_Efault() => Expect(Errno.EFAULT, () => _p.Mremap(_a + 8 * P, P, 2 * P, MremapFlags.MayMove));

    [Test]
    public void Mremap_SpanningTwoVmas_Efault()
    {
        ulong b = _p.Mmap(2 * P, Prot.Read, PrivAnon, addr: _a + 4 * P);
        Assert.That(b, Is.EqualTo(_a + 4 * P));
        var layout = Layout(_p);
        Expect(Errno.EFAULT, () => _p.Mremap(_a + 3 * P, 2 * P, 4 * P, MremapFlags.MayMove));
        Assert.That(Layout(_p), Is.EqualTo(layout));
        _p.Munmap(b, 2 * P);
        _rec.Clear();
    }

    [Test] public void Mmap_NeitherSharedNorPrivate_Einval() => Expect(Errno.EINVAL, () => _p.Mmap(P, RW, MapFlags.Anonymous));
    [Test] public void Mmap_FileMappingWithoutFile_Ebadf() => Expect(Errno.EBADF, () => _p.Mmap(P, RW, MapFlags.Shared));
    [Test] public void Mmap_FixedNoReplace_OverAMapping_Eexist() => Expect(Errno.EEXIST, () => _p.Mmap(P, RW, PrivAnon | MapFlags.FixedNoReplace, addr: _a + P));

    // Linux: MAP_FIXED_NOREPLACE "implies MAP_FIXED" (do_mmap ORs it in) and still fails with EEXIST when both are given.
    [Test] public void Mmap_FixedNoReplaceTogetherWithFixed_OverAMapping_Eexist()
        => Expect(Errno.EEXIST, () => _p.Mmap(P, RW, PrivAnon | MapFlags.Fixed | MapFlags.FixedNoReplace, addr: _a + P));

    [Test] public void Mmap_HugeTlbBeyondThePool_Enomem() => Expect(Errno.ENOMEM, () => _p.Mmap(2 * Huge, RW, PrivAnon | MapFlags.HugeTlb));

    [Test]
    public void Munmap_HugeTlbOffA2MiBBoundary_Einval()
    {
        ulong h = _p.Mmap(Huge, RW, PrivAnon | MapFlags.HugeTlb);
        _p.Store(h + 8, 5);
        var layout = Layout(_p);
        long used = _machine.UsedPages;
        Expect(Errno.EINVAL, () => _p.Munmap(h + P, P));
        Expect(Errno.EINVAL, () => _p.Munmap(h, P));
        Assert.That(Layout(_p), Is.EqualTo(layout));
        Assert.That(_machine.UsedPages, Is.EqualTo(used));
        Assert.That(_p.Load<int>(h + 8), Is.EqualTo(5));
        Assert.That(_p.Mm.EntryAt(h).IsHuge, Is.True);
        Assert.That(_rec.Events, Is.Empty);
        _p.Munmap(h, Huge);
        Assert.That(_machine.HugeTlbFreePages, Is.EqualTo(1));
        _rec.Clear();
    }

    [Test]
    public void NotifierInsert_ZeroLengthOrOverflow_Eoverflow()
    {
        var ops = new NoOps();
        var n = new IntervalNotifier(ops);
        Assert.That(n.Insert(_p.Mm, _a, 0), Is.EqualTo(Errno.EOVERFLOW));
        Assert.That(n.IsInserted, Is.False);
        Assert.That(n.Insert(_p.Mm, ulong.MaxValue - P, 2 * P), Is.EqualTo(Errno.EOVERFLOW));
        Assert.That(n.IsInserted, Is.False);
        Assert.That(n.Insert(_p.Mm, _a, P), Is.EqualTo(Errno.Ok), "the notifier is reusable after a failed insert");
        n.Remove();
    }

    private sealed class NoOps : IIntervalNotifierOps
    {
        public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
        {
            notifier.SetSeq(curSeq);
            return true;
        }
    }
}

/// <summary>Running out of RAM: ENOMEM on the access, invariants hold, nothing leaks.</summary>
public class OutOfMemoryTests
{
    [Test]
    public void WritingUntilRamRunsOut_ThrowsEnomem_ThenExitFreesEverything()
    {
        using var machine = NewMachine(memory: 8L << 20);
        var p = machine.CreateProcess("app");
        ulong len = 16UL << 20;
        ulong a = p.Mmap(len, RW, PrivAnon);
        ulong written = 0;
        var e = Assert.Throws<ErrnoException>(() =>
        {
            for (ulong off = 0; off < len; off += P)
            {
                p.Store(a + off, (int)(off / P) + 1);
                written = off + P;
            }
        })!;
        Assert.That(e.Errno, Is.EqualTo(Errno.ENOMEM));
        Assert.That(written, Is.GreaterThan(0UL).And.LessThan(len));
        Assert.That(machine.FreePages, Is.Zero);
        Assert.That(p.Mm.RssAnon, Is.EqualTo((long)(written / P)));
        Assert.That(p.Load<int>(a + written - P), Is.EqualTo((int)(written / P)), "earlier pages are intact");
        Assert.That(p.Load<int>(a + written), Is.Zero, "the failed page reads the zero page");
        machine.CheckInvariants();
        ulong s = p.Mmap(4 * P, RW, SharedAnon | MapFlags.Populate);   // mm_populate stops quietly at the first failure
        Assert.That(p.Mm.RssFile, Is.Zero);
        Assert.That(s, Is.Not.Zero);
        machine.CheckInvariants();
        p.Exit();
        machine.CheckInvariants();
        Assert.That(machine.UsedPages, Is.Zero);
        Assert.That(machine.FreePages, Is.EqualTo(machine.TotalPages - machine.BootReservedPages));
    }
}
