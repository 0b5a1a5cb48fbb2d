using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Interleaving;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Locking;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>
/// MADV_COLLAPSE as mm/khugepaged.c: collapse_huge_page holds the anon_vma rwsem for write
/// while the block's pages are checked and copied (no rmap walk of the lineage meanwhile), and
/// hpage_collapse_scan_pmd / __collapse_huge_page_isolate refuse a zone-device folio
/// (SCAN_PAGE_NULL), which madvise_collapse skips and reports as EINVAL (madvise_collapse_errno).
/// </summary>
[NonParallelizable] // installs the static test hook
public sealed class CollapseFidelityTests
{
    [TearDown]
    public void TearDown() => TestHooks.Callback = null;

    [Test]
    public void Collapse_HoldsTheAnonVmaRwsemForWriteWhileCopying_AnRmapWalkerWaits()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        Fill(p, a, 8);
        var anon = p.Mm.Vmas[0].Anon!;
        ulong oldPfn = p.Mm.EntryAt(a + 3 * P).Pfn;
        bool? heldForWrite = null, walkerGotIn = null;
        int copies = 0;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point != TestHookPoint.CollapseCopying || subject != p.Mm) return;
            copies++;
            heldForWrite = anon.Rwsem.IsWriteHeldByCurrentThread;
            // folio_lock_anon_vma_read's trylock flavour from another thread: refused during the copy.
            WorkerThread.Run("rmap walker", () =>
            {
                walkerGotIn = anon.Rwsem.TryReadLock();
                if (walkerGotIn == true) anon.Rwsem.ReadUnlock();
            });
        };

        p.Madvise(a, Huge, Advice.Collapse);
        TestHooks.Callback = null;

        Assert.That(copies, Is.EqualTo(1));
        Assert.That(heldForWrite, Is.True, "collapse_huge_page: anon_vma_lock_write around the copy");
        Assert.That(walkerGotIn, Is.False, "no rmap walk of the lineage while the pages are copied");
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        Assert.That(anon.Rwsem.IsLocked, Is.False, "released once the PMD leaf is in");
        // The walk that had to wait now finds the old page unmapped and the new folio mapped.
        Assert.That(machine.FolioReferenced(oldPfn).ReferencedMappings, Is.Zero);
        Assert.That(machine.FolioReferenced(p.Mm.EntryAt(a).Pfn).ReferencedMappings, Is.EqualTo(1));
        AssertFilled(p, a, 8);
        machine.CheckInvariants();
    }

    [Test]
    public void Collapse_BlockWithACoherentDevicePage_IsSkipped_OthersCollapse_ThenEinval()
    {
        using var machine = NewMachine();
        var coherent = new TestDevice(machine, DevicePageKind.Coherent, name: "coh");
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * Huge, RW, PrivAnon);
        Assert.That(a % Huge, Is.Zero);
        Fill(p, a, 4);
        Fill(p, a + Huge, 4, seed: 2000);
        Assert.That(coherent.MigrateToDevice(p, a + P, 1), Is.EqualTo(1));
        ulong devicePfn = p.Mm.EntryAt(a + P).Pfn;
        Assert.That(machine.IsDevicePage(devicePfn), Is.True, "a present mapping of coherent device memory");

        var error = Assert.Throws<ErrnoException>(() => p.Madvise(a, 2 * Huge, Advice.Collapse))!;

        Assert.That(error.Errno, Is.EqualTo(Errno.EINVAL), "SCAN_PAGE_NULL → madvise_collapse_errno's default");
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.False, "the block with the zone-device page is not collapsed");
        Assert.That(p.Mm.EntryAt(a + P).Pfn, Is.EqualTo(devicePfn), "its device page stays where it is");
        Assert.That(p.Mm.EntryAt(a + Huge).IsHuge, Is.True, "madvise_collapse went on with the next block");
        AssertFilled(p, a, 4);
        AssertFilled(p, a + Huge, 4, seed: 2000);

        // Positive twin: once the page is back in system memory (a CPU write fault does not move
        // coherent memory, so munmap/refill the one page), the block collapses and madvise succeeds.
        p.Madvise(a + P, P, Advice.DontNeed);
        p.Store(a + P, 1001);
        p.Madvise(a, 2 * Huge, Advice.Collapse);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        AssertFilled(p, a, 4);
        machine.CheckInvariants();
    }
}
