using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>
/// madvise_collapse's result (mm/khugepaged.c): 0 only when every 2 MiB block of the range ends
/// PMD-mapped; otherwise madvise_collapse_errno of the LAST failed block (ENOMEM for
/// SCAN_ALLOC_HUGE_PAGE_FAIL, EAGAIN for SCAN_PAGE_COUNT / SCAN_PAGE_LOCK, EINVAL for the rest). Blocks
/// failing with a result of the continue list are left unchanged and the walk goes on; SCAN_PMD_NONE
/// and an allocation failure end it.
/// </summary>
public sealed class CollapseErrnoTests
{
    private static void Collapse(Process p, ulong addr, ulong len) => p.Madvise(addr, len, Advice.Collapse);

    private static Errno CollapseErrno(Process p, ulong addr, ulong len)
        => Assert.Throws<ErrnoException>(() => Collapse(p, addr, len))!.Errno;

    // SCAN_PAGE_COUNT (is_refcount_suitable: a GUP pin is a reference beyond the mappings) is in the
    // continue list and maps to EAGAIN ("trying again might succeed").
    [Test]
    public void PinnedPage_BlockLeftAlone_NextBlockCollapses_Eagain()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * Huge, RW, PrivAnon);
        Fill(p, a, 512);
        Fill(p, a + Huge, 512, seed: 5000);
        ulong pinnedPfn = p.Mm.EntryAt(a + 7 * P).Pfn;
        var pin = p.PinUserPages(a + 7 * P, 1, write: true, longTerm: false);

        Assert.That(CollapseErrno(p, a, 2 * Huge), Is.EqualTo(Errno.EAGAIN));
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.False, "the pinned block is not collapsed");
        Assert.That(p.Mm.EntryAt(a + 7 * P).Pfn, Is.EqualTo(pinnedPfn), "the pinned page stays mapped where it was");
        Assert.That(p.Mm.EntryAt(a + Huge).IsHuge, Is.True, "SCAN_PAGE_COUNT is in the continue list");
        AssertFilled(p, a, 512);
        AssertFilled(p, a + Huge, 512, seed: 5000);
        machine.CheckInvariants();

        // Positive twin: once the pin is gone the retry the errno invites succeeds.
        pin.Dispose();
        Collapse(p, a, 2 * Huge);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        AssertFilled(p, a, 512);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // A device-private entry is a swap-like entry: the simulator does not swap it in from madvise
    // (see AddressSpace.Collapse), so the block reports SCAN_PTE_NON_PRESENT → EINVAL.
    [Test]
    public void DevicePrivateEntry_BlockLeftAlone_Einval_ContentsKept()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private, name: "priv");
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * Huge, RW, PrivAnon);
        Fill(p, a, 512);
        Fill(p, a + Huge, 512, seed: 5000);
        Assert.That(dev.MigrateToDevice(p, a + 3 * P, 2), Is.EqualTo(2));
        Assert.That(p.Mm.EntryAt(a + 3 * P).Kind, Is.EqualTo(PteKind.DevicePrivate));

        Assert.That(CollapseErrno(p, a, 2 * Huge), Is.EqualTo(Errno.EINVAL));
        Assert.That(p.Mm.EntryAt(a + 3 * P).Kind, Is.EqualTo(PteKind.DevicePrivate), "the device keeps its pages");
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.False);
        Assert.That(p.Mm.EntryAt(a + Huge).IsHuge, Is.True);
        machine.CheckInvariants();

        // The CPU touch brings the pages back (migrate_to_ram); then the block collapses.
        AssertFilled(p, a, 512);
        Collapse(p, a, Huge);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        AssertFilled(p, a, 512);
        ExitAllAndCheckDevices(machine, dev);
    }

    // hpage_collapse_scan_pmd: no writable PTE in the block → SCAN_PAGE_RO (continue list, EINVAL).
    // After fork every private PTE of the parent is write-protected, so nothing collapses. MADV_COLLAPSE
    // has no max_ptes_shared limit: once one PTE is writable again the block collapses, copying the
    // pages still shared with the child, which keeps its own.
    [Test]
    public void SharedWithChild_AllReadOnly_Einval_ThenOneCowBreak_CollapsesCopyingTheSharedPages()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        Fill(p, a, 512);
        var c = p.Fork();
        using (var rec = NotifierRecorder.Attach(p.Mm))
        {
            Assert.That(CollapseErrno(p, a, Huge), Is.EqualTo(Errno.EINVAL));
            Assert.That(rec.Events, Is.Empty, "a refused block raises no notifier event");
        }
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.False);
        machine.CheckInvariants();

        p.Store(a, 42);   // COW break: this one PTE is writable again
        Collapse(p, a, Huge);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        Assert.That(p.Load<int>(a), Is.EqualTo(42));
        AssertFilled(p, a + P, 511, seed: 1001);
        AssertFilled(c, a, 512);
        Assert.That(c.Mm.EntryAt(a + P).IsHuge, Is.False, "the child's mapping is untouched");
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // madvise_collapse returns madvise_collapse_errno(last_fail): the later failure wins.
    [TestCase(false, Errno.EINVAL)]
    [TestCase(true, Errno.EAGAIN)]
    public void TwoFailedBlocks_TheLastFailureIsReported(bool pinnedBlockLast, Errno expected)
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private, name: "priv");
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * Huge, RW, PrivAnon);
        Fill(p, a, 512);
        Fill(p, a + Huge, 512, seed: 5000);
        ulong pinned = pinnedBlockLast ? a + Huge : a, onDevice = pinnedBlockLast ? a : a + Huge;
        using (p.PinUserPages(pinned + P, 1, write: true, longTerm: false))
        {
            Assert.That(dev.MigrateToDevice(p, onDevice, 1), Is.EqualTo(1));
            Assert.That(CollapseErrno(p, a, 2 * Huge), Is.EqualTo(expected));
            Assert.That(p.Mm.EntryAt(a).IsHuge || p.Mm.EntryAt(a + Huge).IsHuge, Is.False);
        }
        AssertFilled(p, a, 512);
        AssertFilled(p, a + Huge, 512, seed: 5000);
        ExitAllAndCheckDevices(machine, dev);
    }

    // SCAN_PMD_NONE (check_pmd_state on an empty PMD slot) is not in madvise_collapse's continue
    // list: the walk stops there, so a populated block after a never-touched one is not collapsed.
    [Test]
    public void EmptyPmdSlot_StopsTheWalk_Einval_LaterBlockUntouched()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * Huge, RW, PrivAnon);
        Fill(p, a + Huge, 512);
        using var rec = NotifierRecorder.Attach(p.Mm);

        Assert.That(CollapseErrno(p, a, 2 * Huge), Is.EqualTo(Errno.EINVAL));
        Assert.That(p.Mm.EntryAt(a + Huge).IsHuge, Is.False, "the walk ended at the empty PMD");
        Assert.That(rec.Events, Is.Empty);

        // Positive twin: the populated block alone collapses.
        Collapse(p, a + Huge, Huge);
        Assert.That(p.Mm.EntryAt(a + Huge).IsHuge, Is.True);
        AssertFilled(p, a + Huge, 512);
        machine.CheckInvariants();
    }

    // A block whose page table holds only holes and zero-page mappings has no writable PTE: SCAN_PAGE_RO.
    [Test]
    public void ReadFaultedBlock_OnlyZeroPages_Einval()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        for (ulong i = 0; i < 512; i += 16) Assert.That(p.Load<int>(a + i * P), Is.Zero);
        Assert.That(CollapseErrno(p, a, Huge), Is.EqualTo(Errno.EINVAL));
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.False);
        p.Store(a + 5 * P, 9);
        Collapse(p, a, Huge);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        Assert.That(p.Load<int>(a + 5 * P), Is.EqualTo(9));
        Assert.That(p.Load<int>(a + 6 * P), Is.Zero);
        machine.CheckInvariants();
    }

    // SCAN_ALLOC_HUGE_PAGE_FAIL → ENOMEM, and it ends the walk ("other error, exit").
    [Test]
    public void NoFreeHugeFrame_Enomem_NothingChanged()
    {
        using var machine = NewMachine(memory: 8L << 20);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * Huge, RW, PrivAnon);
        Fill(p, a, 512);
        Fill(p, a + Huge, 400, seed: 5000);
        ulong filler = p.Mmap(2 * Huge, RW, PrivAnon);   // take the rest of RAM in base pages
        for (ulong i = 0; i < 1024 && machine.Allocator.FreePages > 64; i++) p.Store(filler + i * P, 1);
        Assert.That(machine.Allocator.FreePages, Is.LessThan(512));
        Assert.That(CollapseErrno(p, a, 2 * Huge), Is.EqualTo(Errno.ENOMEM));
        Assert.That(p.Mm.EntryAt(a).IsHuge || p.Mm.EntryAt(a + Huge).IsHuge, Is.False);
        AssertFilled(p, a, 512);
        AssertFilled(p, a + Huge, 400, seed: 5000);
        machine.CheckInvariants();
    }

    // The block count: hend - hstart wraps when the range lies inside one block (hstart > hend), so the
    // count of collapsed blocks can never match → EINVAL; a range with hstart == hend counts zero
    // blocks and succeeds.
    [Test]
    public void RangeInsideOneBlock_Einval_RangeAcrossABoundaryWithNoWholeBlock_Succeeds()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * Huge, RW, PrivAnon);
        Fill(p, a, 1024);
        Assert.That(CollapseErrno(p, a + P, 4 * P), Is.EqualTo(Errno.EINVAL));
        Collapse(p, a + Huge - P, 2 * P);
        Assert.That(p.Mm.EntryAt(a).IsHuge || p.Mm.EntryAt(a + Huge).IsHuge, Is.False);
        AssertFilled(p, a, 1024);
        machine.CheckInvariants();
    }

    // SCAN_PMD_MAPPED counts as collapsed: a range that is already huge succeeds again.
    [Test]
    public void AlreadyPmdMapped_CountsAsDone()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        Fill(p, a, 512);
        Collapse(p, a, Huge);
        using var rec = NotifierRecorder.Attach(p.Mm);
        Collapse(p, a, Huge);
        Assert.That(rec.Events, Is.Empty);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        machine.CheckInvariants();
    }

    [Test]
    public void CollapseErrno_MapsEachResultAsTheKernel()
    {
        Assert.That(AddressSpace.CollapseErrno(CollapseScan.AllocFail), Is.EqualTo(Errno.ENOMEM));
        Assert.That(AddressSpace.CollapseErrno(CollapseScan.PageCount), Is.EqualTo(Errno.EAGAIN));
        Assert.That(AddressSpace.CollapseErrno(CollapseScan.PageLock), Is.EqualTo(Errno.EAGAIN));
        foreach (var r in new[] { CollapseScan.PmdNull, CollapseScan.PmdNone, CollapseScan.PteNonPresent, CollapseScan.PageRo, CollapseScan.PageNull, CollapseScan.PageAnon })
            Assert.That(AddressSpace.CollapseErrno(r), Is.EqualTo(Errno.EINVAL), r.ToString());
    }
}
