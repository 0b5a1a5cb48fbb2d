using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>
/// folio_ref_freeze / folio_ref_unfreeze / folio_try_get on the simulated page metadata, and the
/// THP split built on them (issue 8, PAGE-R01): a split freezes the refcount at the caller's
/// references after unmapping the folio, and a reference nobody accounted for makes it fail.
/// </summary>
public class FolioRefFreezeTests
{
    [Test]
    public void FreezeSucceedsOnlyAtTheExpectedCount_AndTryGetFailsWhileFrozen()
    {
        using var machine = MmTest.NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(MmTest.P, MmTest.RW, MmTest.PrivAnon);
        p.Store(a, 1);
        ulong pfn = p.Mm.EntryAt(a).Pfn;
        Assert.That(machine.Frames.RefCount(pfn), Is.EqualTo(1));

        Assert.That(machine.TryFreezeRefs(pfn, 2), Is.False, "the count is 1, not 2");
        Assert.That(machine.Frames.RefCount(pfn), Is.EqualTo(1));
        Assert.That(machine.TryFreezeRefs(pfn, 1), Is.True);
        Assert.That(machine.Frames.RefCount(pfn), Is.Zero);
        Assert.That(machine.TryGetPage(pfn), Is.False, "folio_try_get must fail on a frozen folio");
        var bug = Assert.Throws<KernelBugException>(() => machine.GetPage(pfn))!;
        Assert.That(bug.Message, Does.Contain("PAGE-R01"));
        Assert.That(machine.Frames.RefCount(pfn), Is.Zero, "the failed folio_get left the count frozen");

        machine.UnfreezeRefs(pfn, 1);
        Assert.That(machine.TryGetPage(pfn), Is.True);
        Assert.That(machine.Frames.RefCount(pfn), Is.EqualTo(2));
        machine.PutPage(pfn);
        Assert.Throws<KernelBugException>(() => machine.UnfreezeRefs(pfn, 1), "unfreezing a live count");
        machine.CheckInvariants();
    }

    [Test]
    public void SplitOfAPteMappedThp_GivesEachSubpageItsOwnCountAndMapping()
    {
        using var machine = MmTest.NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(MmTest.Huge, MmTest.RW, MmTest.PrivAnon);
        p.Madvise(a, MmTest.Huge, Advice.HugePage);
        MmTest.Fill(p, a, Page.PmdPages);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        p.Madvise(a + 8 * MmTest.P, 8 * MmTest.P, Advice.DontNeed);   // splits the PMD; 8 subpages unmapped
        ulong head = p.Mm.EntryAt(a).Pfn;
        machine.GetPage(head);
        machine.LockPage(head);
        bool split = machine.TrySplitFolio(head, 1);
        machine.UnlockPage(head);
        machine.PutPage(head);

        Assert.That(split, Is.True);
        for (int i = 0; i < Page.PmdPages; i++)
        {
            ulong va = a + (ulong)i * MmTest.P;
            if (i >= 8 && i < 16) { Assert.That(p.Mm.EntryAt(va).IsNone, Is.True); continue; }
            ulong pfn = p.Mm.EntryAt(va).Pfn;
            Assert.That(pfn, Is.EqualTo(head + (ulong)i));
            Assert.That(machine.Frames.Order(pfn), Is.Zero);
            Assert.That(machine.Frames.RefCount(pfn), Is.EqualTo(1), $"subpage {i}");
        }
        Assert.That(machine.Frames.RefCount(head + 8), Is.Zero, "an unmapped subpage is freed");
        MmTest.AssertFilled(p, a, 8);
        MmTest.AssertFilled(p, a + 16 * MmTest.P, Page.PmdPages - 16, 1016);
        machine.CheckInvariants();
    }

    [Test]
    public void SplitWithAnExtraReference_FailsAndLeavesTheFolioMapped()
    {
        using var machine = MmTest.NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(MmTest.Huge, MmTest.RW, MmTest.PrivAnon);
        p.Madvise(a, MmTest.Huge, Advice.HugePage);
        MmTest.Fill(p, a, Page.PmdPages);
        p.Madvise(a + 8 * MmTest.P, MmTest.P, Advice.DontNeed);
        ulong head = p.Mm.EntryAt(a).Pfn;
        int before = machine.Frames.RefCount(head);
        machine.GetPage(head);
        machine.GetPage(head);   // someone else's reference (a GUP, a racing fault)
        machine.LockPage(head);
        bool split = machine.TrySplitFolio(head, 1);
        machine.UnlockPage(head);
        machine.PutPage(head);
        machine.PutPage(head);

        Assert.That(split, Is.False, "can_split_folio / the freeze must refuse");
        Assert.That(machine.Frames.Order(head), Is.EqualTo(Page.PmdOrder));
        Assert.That(machine.Frames.RefCount(head), Is.EqualTo(before));
        Assert.That(p.Mm.EntryAt(a + 5 * MmTest.P).Kind, Is.EqualTo(PteKind.Present));
        MmTest.AssertFilled(p, a, 8);
        machine.CheckInvariants();
    }
}
