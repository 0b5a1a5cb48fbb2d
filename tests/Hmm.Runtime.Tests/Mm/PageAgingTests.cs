using System.Collections.Concurrent;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>
/// Page aging: the accessed (young) bit the MMU sets, the rmap young walk (folio_referenced in
/// mm/rmap.c, with ptep_clear_flush_young_notify asking the whole-mm notifiers), and its callers:
/// reclaim of lazy-free pages (folio_check_references in mm/vmscan.c) and MADV_COLD /
/// MADV_PAGEOUT (madvise_cold_or_pageout_pte_range in mm/madvise.c).
/// </summary>
public class PageAgingTests
{
    /// <summary>A KVM-like secondary MMU: answers clear_flush_young with <see cref="Young"/> and records each range asked.</summary>
    private sealed class YoungOps : MmuNotifierOps
    {
        public readonly ConcurrentQueue<(ulong Start, ulong End)> Asked = new();
        public bool Young;

        public override bool ClearFlushYoung(MmuNotifier subscription, AddressSpace mm, ulong start, ulong end)
        {
            Asked.Enqueue((start, end));
            return Young;
        }
    }

    private static (YoungOps Ops, MmuNotifier Notifier) Subscribe(AddressSpace mm, bool young = false)
    {
        var ops = new YoungOps { Young = young };
        var n = new MmuNotifier(ops);
        Assert.That(n.Register(mm), Is.EqualTo(Hmm.Runtime.Errno.Ok));
        return (ops, n);
    }

    private static void Unsubscribe(AddressSpace mm, MmuNotifier n)
    {
        n.Unregister(mm);
        MmuNotifier.Synchronize(mm.Machine);
    }

    private static bool Young(Process p, ulong addr) => p.Mm.EntryAt(addr).IsYoung;

    private static bool Referenced(Machine machine, ulong pfn) => (machine.Frames.Flags(pfn) & PageFlags.Referenced) != 0;

    [Test]
    public void CpuAccess_SetsTheAccessedBit_ColdClearsIt_ReadOrWriteSetsItAgain()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        Assert.That(Young(p, a), Is.True, "a fault maps the page young");
        p.Madvise(a, 2 * P, Advice.Cold);
        Assert.That(Young(p, a) || Young(p, a + P), Is.False, "MADV_COLD makes the exclusive pages old");
        Assert.That(p.Load<int>(a), Is.EqualTo(1000));
        Assert.That(Young(p, a), Is.True, "a CPU read sets the accessed bit");
        Assert.That(Young(p, a + P), Is.False, "an untouched neighbour stays old");
        Assert.That(p.Mm.EntryAt(a + P).IsDirty, Is.True, "COLD leaves the dirty bit");
        p.Store(a + P + 8, 5);
        Assert.That(Young(p, a + P), Is.True, "a CPU write sets the accessed bit too");
        AssertFilled(p, a, 2);
        machine.CheckInvariants();
    }

    [Test]
    public void FolioReferenced_TestsAndClearsEveryMapping_AsksEachMmsNotifierForThePage_CountsItsAnswer()
    {
        using var machine = NewMachine();
        var parent = machine.CreateProcess("parent");
        ulong a = parent.Mmap(2 * P, RW, PrivAnon);
        Fill(parent, a, 2);
        var child = parent.Fork("child");
        Assert.That(Young(child, a + P), Is.False, "copy_present_pte: the child's entry starts old");
        Assert.That(Young(parent, a + P), Is.True, "the parent's keeps its accessed bit");
        Assert.That(child.Load<int>(a + P), Is.EqualTo(1001));
        Assert.That(Young(child, a + P), Is.True);
        ulong pfn = parent.Mm.EntryAt(a + P).Pfn;
        Assert.That(child.Mm.EntryAt(a + P).Pfn, Is.EqualTo(pfn), "one folio, two mappings");
        var (parentOps, pn) = Subscribe(parent.Mm);
        var (childOps, cn) = Subscribe(child.Mm);

        var refs = machine.FolioReferenced(pfn);
        Assert.That(refs, Is.EqualTo(new FolioReferences(2, Locked: false)), "both mappings were young");
        Assert.That(Young(parent, a + P) || Young(child, a + P), Is.False, "the walk cleared the accessed bit in every mapping");
        Assert.That(Young(parent, a), Is.True, "and only the folio's own entries");
        Assert.That(parentOps.Asked, Is.EqualTo(new[] { (a + P, a + 2 * P) }), "ptep_clear_flush_young_notify asks for the page's range");
        Assert.That(childOps.Asked, Is.EqualTo(new[] { (a + P, a + 2 * P) }));

        Assert.That(machine.FolioReferenced(pfn), Is.EqualTo(new FolioReferences(0, Locked: false)), "nothing touched it since");
        childOps.Young = true;
        Assert.That(machine.FolioReferenced(pfn).ReferencedMappings, Is.EqualTo(1), "a secondary MMU's young answer counts as a reference of that mapping");
        Assert.That(parentOps.Asked, Has.Count.EqualTo(3));
        Assert.That(childOps.Asked, Has.Count.EqualTo(3));

        Unsubscribe(parent.Mm, pn);
        Unsubscribe(child.Mm, cn);
        child.Exit();
        machine.CheckInvariants();
    }

    [Test]
    public void FolioReferenced_DeviceExclusiveEntry_IsOld_AndTheNotifierIsNotAsked()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        ulong pfn = p.Mm.EntryAt(a).Pfn;
        var (ops, n) = Subscribe(p.Mm, young: true);
        p.Mm.MmapLock.ReadLock();
        try
        {
            Assert.That(DeviceExclusive.Make(p.Mm, a, new object(), out var page), Is.EqualTo(Hmm.Runtime.Errno.Ok));
            page.Dispose();
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.DeviceExclusive));

        Assert.That(machine.FolioReferenced(pfn), Is.EqualTo(new FolioReferences(0, Locked: false)),
            "folio_referenced_one: a non-present entry is old from the CPU's point of view");
        Assert.That(ops.Asked, Is.Empty, "the notifiers are only asked about present entries");
        // Positive twin: the present neighbour is referenced through the notifier's answer.
        Assert.That(machine.FolioReferenced(p.Mm.EntryAt(a + P).Pfn).ReferencedMappings, Is.EqualTo(1));
        Assert.That(ops.Asked, Is.EqualTo(new[] { (a + P, a + 2 * P) }));

        Unsubscribe(p.Mm, n);
        AssertFilled(p, a, 2);
        machine.CheckInvariants();
    }

    [Test]
    public void FolioReferenced_LockedMapping_ReportsLocked_ReclaimKeepsTheLazyFreePage()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, PrivAnon);
        Fill(p, a, 1);
        p.Madvise(a, P, Advice.Free);
        ulong pfn = p.Mm.EntryAt(a).Pfn;
        p.Mm.Vmas[0].Flags |= VmFlags.Locked;   // as mlock would after the MADV_FREE
        Assert.That(machine.FolioReferenced(pfn).Locked, Is.True);
        Assert.That(machine.Reclaim(), Is.Zero, "folio_check_references activates a folio in a VM_LOCKED mapping");
        AssertFilled(p, a, 1);
        p.Mm.Vmas[0].Flags &= ~VmFlags.Locked;
        Assert.That(machine.Reclaim(), Is.EqualTo(1), "unlocked, the clean lazy-free page goes");
        AssertZero(p, a, 1);
        machine.CheckInvariants();
    }

    [Test]
    public void ReclaimPass_ReferencedLazyFreePage_IsSparedOnceWithPgReferenced_ThenDropped()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        p.Madvise(a, 2 * P, Advice.Free);
        Assert.That(Young(p, a) || Young(p, a + P), Is.False, "MADV_FREE makes the pages old");
        ulong pfn0 = p.Mm.EntryAt(a).Pfn;
        Assert.That(p.Load<int>(a), Is.EqualTo(1000), "a read after MADV_FREE references the page without cancelling the lazy free");

        Assert.That(machine.ReclaimPass(), Is.EqualTo(1), "only the unreferenced page goes on the first pass");
        Assert.That(Referenced(machine, pfn0), Is.True, "the referenced one is marked and spared");
        Assert.That(Young(p, a), Is.False, "its accessed bit was consumed by the walk");
        Assert.That(p.Mm.EntryAt(a + P).IsNone, Is.True);
        Assert.That(machine.ReclaimPass(), Is.EqualTo(1), "unreferenced since, the second pass reclaims it");
        AssertZero(p, a, 2);
        machine.CheckInvariants();
    }

    [Test]
    public void Reclaim_ReferencedAgainBetweenPasses_OrYoungForASecondaryMmu_IsKept()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        p.Madvise(a, 2 * P, Advice.Free);
        Assert.That(p.Load<int>(a), Is.EqualTo(1000));
        Assert.That(machine.ReclaimPass(), Is.EqualTo(1));
        Assert.That(p.Load<int>(a), Is.EqualTo(1000), "used again before the next pass");
        Assert.That(machine.ReclaimPass(), Is.Zero, "a second reference in a row keeps (activates) it");
        AssertFilled(p, a, 1);

        // The page is still lazy-free and clean; now only a secondary MMU uses it.
        var (ops, n) = Subscribe(p.Mm, young: true);
        Assert.That(machine.Reclaim(), Is.Zero, "clear_flush_young answering young keeps the page through both passes");
        Assert.That(ops.Asked, Is.EqualTo(new[] { (a, a + P), (a, a + P) }), "one query per pass, for the page's range");
        AssertFilled(p, a, 1);
        ops.Young = false;
        Assert.That(machine.Reclaim(), Is.EqualTo(1), "once the secondary MMU stops using it, it goes");
        AssertZero(p, a, 2);
        Unsubscribe(p.Mm, n);
        machine.CheckInvariants();
    }

    [Test]
    public void PageOut_IgnoresReferences_FreesACleanLazyFreePageEvenIfUsed_KeepsWrittenAndSwapBackedPages()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        p.Madvise(a, 2 * P, Advice.Free);
        Assert.That(p.Load<int>(a), Is.EqualTo(1000), "page 0: lazy-free, clean, referenced");
        p.Store(a + P + 8, 7);                                // page 1: lazy-free, written since
        ulong pfn1 = p.Mm.EntryAt(a + P).Pfn;
        var (ops, n) = Subscribe(p.Mm, young: true);
        using var rec = Support.NotifierRecorder.Attach(p.Mm);

        p.Madvise(a, 4 * P, Advice.PageOut);

        Assert.That(p.Mm.EntryAt(a).IsNone, Is.True, "reclaim_pages ignores references: the used clean lazy-free page is freed");
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Clear, a, a + P) }), "only the freed page is invalidated");
        Assert.That(ops.Asked, Is.Empty, "MADV_PAGEOUT asks no notifier about young");
        Assert.That(machine.Frames.Flags(pfn1) & PageFlags.LazyFree, Is.EqualTo(PageFlags.None), "the written page is swap-backed again");
        Assert.That(p.Load<int>(a + P + 8), Is.EqualTo(7));
        Assert.That(Young(p, a + 2 * P), Is.True, "PAGEOUT leaves the accessed bit (no swap: the anonymous page stays)");
        AssertZero(p, a, 1);
        AssertFilled(p, a + 2 * P, 2, seed: 1002);
        Assert.That(p.Mm.RssAnon, Is.EqualTo(3));
        Unsubscribe(p.Mm, n);
        machine.CheckInvariants();
    }

    [Test]
    public void Cold_ClearsYoungWithoutAskingNotifiers_LeavesPagesSharedWithAFork()
    {
        using var machine = NewMachine();
        var parent = machine.CreateProcess("parent");
        ulong a = parent.Mmap(2 * P, RW, PrivAnon);
        Fill(parent, a, 2);
        var child = parent.Fork("child");
        parent.Store(a + P, 2001);                               // page 1 is now the parent's own copy
        Assert.That(parent.Load<int>(a), Is.EqualTo(1000));
        var (ops, n) = Subscribe(parent.Mm, young: true);
        using var rec = Support.NotifierRecorder.Attach(parent.Mm);

        parent.Madvise(a, 2 * P, Advice.Cold);

        Assert.That(Young(parent, a + P), Is.False, "the exclusive page is made old");
        Assert.That(Young(parent, a), Is.True, "a page still shared with the child is left alone");
        Assert.That(ops.Asked, Is.Empty, "MADV_COLD clears the CPU bit only");
        Assert.That(rec.Events, Is.Empty, "and raises no invalidation");
        Assert.That(parent.Load<int>(a + P), Is.EqualTo(2001));
        Assert.That(child.Load<int>(a + P), Is.EqualTo(1001));
        Unsubscribe(parent.Mm, n);
        child.Exit();
        machine.CheckInvariants();
    }

    [Test]
    public void ColdAndPageOut_BadRequests_FailWithTheKernelsErrno_AndChangeNothing()
    {
        using var machine = NewMachine(hugeTlbPages: 1);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        p.Madvise(a, 2 * P, Advice.Free);
        Assert.That(p.Load<int>(a), Is.EqualTo(1000));
        ulong h = p.Mmap(Huge, RW, PrivAnon | MapFlags.HugeTlb);
        p.Store(h, 1);
        foreach (var advice in new[] { Advice.Cold, Advice.PageOut })
        {
            Assert.That(ErrnoOf(() => p.Madvise(a + 1, P, advice)), Is.EqualTo(Hmm.Runtime.Errno.EINVAL), "unaligned start");
            Assert.That(ErrnoOf(() => p.Madvise(a, ulong.MaxValue - P, advice)), Is.EqualTo(Hmm.Runtime.Errno.EINVAL), "the range overflows");
            Assert.That(ErrnoOf(() => p.Madvise(a, 4 * P, advice)), Is.EqualTo(Hmm.Runtime.Errno.ENOMEM), "part of the range is unmapped");
            Assert.That(ErrnoOf(() => p.Madvise(h, Huge, advice)), Is.EqualTo(Hmm.Runtime.Errno.EINVAL), "hugetlb (can_madv_lru_vma)");
            p.Mm.Vmas.First(v => v.Start == a).Flags |= VmFlags.Locked;
            Assert.That(ErrnoOf(() => p.Madvise(a, 2 * P, advice)), Is.EqualTo(Hmm.Runtime.Errno.EINVAL), "VM_LOCKED (can_madv_lru_vma)");
            p.Mm.Vmas.First(v => v.Start == a).Flags &= ~VmFlags.Locked;
            Assert.That(Young(p, a), Is.True, "no failed request made the page old");
            Assert.That(p.Mm.EntryAt(a).IsNone || p.Mm.EntryAt(a + P).IsNone, Is.False, "nor reclaimed anything");
        }
        p.Madvise(a, 0, Advice.PageOut);
        Assert.That(p.Mm.EntryAt(a).IsNone, Is.False, "a zero length succeeds and does nothing");
        AssertFilled(p, a, 2);
        machine.CheckInvariants();
    }

    private static Hmm.Runtime.Errno? ErrnoOf(Action action)
    {
        try { action(); return null; }
        catch (ErrnoException e) { return e.Errno; }
    }
}
