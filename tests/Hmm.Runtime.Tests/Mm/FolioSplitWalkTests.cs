using Hmm.Runtime.Interleaving;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Locking;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>
/// split_huge_page's unmap walk goes VMA by VMA, as rmap_walk_anon does (try_to_migrate with
/// TTU_SPLIT_HUGE_PMD converts one VMA's mappings before it looks at the next): a fork that
/// linked its child's VMA before the split took the anon_vma rwsem, and copies the parent's PMD
/// while the split is at the parent, is found in the child afterwards, so the split succeeds
/// where a walk that probed every VMA first missed the child's copy and had to give up.
/// </summary>
[NonParallelizable] // installs the static test hook
public sealed class FolioSplitWalkTests
{
    [TearDown]
    public void TearDown() => TestHooks.Callback = null;

    private static (Machine Machine, Process Parent, ulong Addr, ulong Head) ThpParent()
    {
        var machine = MmTest.NewMachine();
        var p = machine.CreateProcess("parent");
        ulong a = p.Mmap(MmTest.Huge, MmTest.RW, MmTest.PrivAnon);
        p.Madvise(a, MmTest.Huge, Advice.HugePage);
        MmTest.Fill(p, a, Page.PmdPages);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True, "a PMD-mapped THP");
        return (machine, p, a, p.Mm.EntryAt(a).Pfn);
    }

    private static bool Split(Machine machine, ulong head)
    {
        machine.GetPage(head);
        machine.LockPage(head);
        try { return machine.TrySplitFolio(head, 1); }
        finally
        {
            machine.UnlockPage(head);
            machine.PutPage(head);
        }
    }

    [Test]
    public void ForkCopyingThePmdWhileTheSplitIsAtTheParent_TheChildIsSplitToo()
    {
        var (machine, parent, a, head) = ThpParent();
        using var _ = machine;
        using var linked = new ManualResetEventSlim();
        using var goFork = new ManualResetEventSlim();
        Process? child = null;
        int visits = 0;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point == TestHookPoint.ForkVmaLinked && subject == parent.Mm)
            {
                linked.Set();
                if (!goFork.Wait(TimeSpan.FromSeconds(30))) throw new TimeoutException("the split never let the fork go");
            }
            else if (point == TestHookPoint.FolioSplitVisit && subject == parent.Mm && Interlocked.Increment(ref visits) == 1)
            {
                // The split holds the rwsem for write and is at the parent: the child's VMA is
                // linked but empty. Let fork copy the PMD now, and wait for it to finish.
                goFork.Set();
                WorkerThread.WaitUntil(() => Volatile.Read(ref child) != null, "fork copied the parent's page tables and returned");
            }
        };
        var forker = WorkerThread.Start("fork", () => Volatile.Write(ref child, parent.Fork("child")));
        Assert.That(linked.Wait(TimeSpan.FromSeconds(30)), Is.True, "fork linked the child's VMA");
        bool split = Split(machine, head);
        forker.Join();
        TestHooks.Callback = null;

        Assert.That(split, Is.True, "the walk met the child's PMD after the parent's and split it too");
        Assert.That(machine.Frames.Order(head), Is.Zero);
        Assert.That(parent.Mm.EntryAt(a).IsHuge || child!.Mm.EntryAt(a).IsHuge, Is.False);
        Assert.That(child!.Mm.EntryAt(a + 7 * MmTest.P).Pfn, Is.EqualTo(head + 7), "the child maps the subpage, shared with the parent");
        Assert.That(parent.Mm.EntryAt(a + 7 * MmTest.P).Pfn, Is.EqualTo(head + 7));
        MmTest.AssertFilled(parent, a, Page.PmdPages);
        MmTest.AssertFilled(child, a, Page.PmdPages);
        child.Store(a + 7 * MmTest.P, 77);
        Assert.That(parent.Load<int>(a + 7 * MmTest.P), Is.EqualTo(1007), "COW keeps the child's store its own");
        child.Exit();
        machine.CheckInvariants();
    }

    [Test]
    public void ForkCompletedBeforeTheSplit_BothAreSplit_AnUnaccountedReferenceRefusesTheSplit()
    {
        var (machine, parent, a, head) = ThpParent();
        using var _ = machine;
        var child = parent.Fork("child");
        Assert.That(child.Mm.EntryAt(a).IsHuge, Is.True);

        // Negative: a reference no mapping accounts for (a speculative get, a DMA user) refuses
        // the split (can_split_folio / the freeze: EAGAIN) and leaves every mapping in place.
        machine.GetPage(head);
        Assert.That(Split(machine, head), Is.False);
        machine.PutPage(head);
        Assert.That(parent.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(child.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(machine.Frames.Order(head), Is.EqualTo(Page.PmdOrder), "nothing split");
        MmTest.AssertFilled(parent, a, Page.PmdPages);
        MmTest.AssertFilled(child, a, Page.PmdPages);

        Assert.That(Split(machine, head), Is.True);
        Assert.That(parent.Mm.EntryAt(a).IsHuge || child.Mm.EntryAt(a).IsHuge, Is.False);
        Assert.That(child.Mm.EntryAt(a + 3 * MmTest.P).Pfn, Is.EqualTo(head + 3));
        MmTest.AssertFilled(parent, a, Page.PmdPages);
        MmTest.AssertFilled(child, a, Page.PmdPages);
        child.Exit();
        machine.CheckInvariants();
    }
}
