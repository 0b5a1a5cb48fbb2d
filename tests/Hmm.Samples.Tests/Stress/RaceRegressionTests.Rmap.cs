using Hmm.Runtime;
using Hmm.Runtime.Interleaving;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Stress;

/// <summary>
/// Reverse-map walks run under the anon_vma rwsem and each hit's page-table lock, never under the
/// mmap lock of the address spaces they visit (mm/rmap.c). Each test stops an mmap writer at a
/// test hook while it holds the mmap lock for write and runs an rmap walk (a device eviction,
/// migrate_device_range → try_to_migrate / remove_migration_ptes) from another thread. With the
/// old scheme — the walk took each visited mm's mmap lock for read — the walk waited for the
/// writer, which waited in the hook for the walk: the watchdog turned that into a failure.
/// </summary>
public partial class RaceRegressionTests
{
    /// <summary>The VMA of <see cref="DmirrorTestBase.P"/> containing <paramref name="address"/>.</summary>
    private Vma VmaOf(ulong address) => P.Mm.Vmas.First(v => v.Start <= address && address < v.End);

    /// <summary>
    /// mprotect on the fork child holds the child's mmap lock for write; meanwhile the device
    /// evicts a page the parent and the child share (a device-private entry copied by fork). The
    /// eviction's walk converts and restores both mappings without waiting for the mprotect.
    /// </summary>
    [Test]
    public void EvictionOfASharedPageWhileTheOtherMmHoldsItsMmapLockForWrite_Completes()
    {
        var dev = DmirrorDevice.Create(Machine, 1);
        using var m = dev.Open(P);
        ulong a = Filled(1, 21), other = Filled(1, 22);
        P.Store(a, 0xA1UL);
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        var child = P.Fork();
        Assert.That(child.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.DevicePrivate), "fork shares the device-private entry");
        bool? evicted = null;
        bool writerHeld = false;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point != TestHookPoint.MprotectFixup || !ReferenceEquals(subject, child.Mm) || evicted != null) return;
            writerHeld = child.Mm.MmapLock.IsWriteHeldByCurrentThread;
            // The child's mmap lock is held for write until this returns: the eviction must not need it.
            var evictor = new Thread(() => m.Release());
            evictor.Start();
            evicted = evictor.Join(Watchdog);
        };
        child.Mprotect(other, PageSize, Prot.Read);
        TestHooks.Callback = null;

        Assert.That(writerHeld, Is.True, "the hook ran with the child's mmap lock held for write");
        Assert.That(evicted, Is.True, "the eviction's rmap walk waited for the child's mmap writer");
        Assert.That(P.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(child.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(P.Load<ulong>(a), Is.EqualTo(0xA1UL));
        Assert.That(child.Load<ulong>(a), Is.EqualTo(0xA1UL));
        child.Exit();
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// Negative case of the above: the walk still excludes a VMA change of the lineage. An mprotect
    /// that splits the VMA holding the page (vma_prepare takes the anon_vma rwsem for write)
    /// waits while the eviction's walk holds it for read, stopped at its hit.
    /// </summary>
    [Test]
    public void VmaSplitOfTheLineageWhileAWalkHoldsTheAnonVmaRwsem_WaitsForTheWalk()
    {
        var dev = DmirrorDevice.Create(Machine, 1);
        using var m = dev.Open(P);
        ulong a = Filled(2, 23);
        P.Store(a, 0xA2UL);
        P.Store(a + PageSize, 0xA3UL);
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        var anon = VmaOf(a).Anon!;
        Thread? splitter = null;
        bool splitWaited = false, splitDoneEarly = false;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point != TestHookPoint.TryToMigrateHit || address != a || splitter != null) return;
            // Inside the walk: the rwsem is held for read. The split must queue on it ...
            splitter = new Thread(() => P.Mprotect(a + PageSize, PageSize, Prot.Read));
            splitter.Start();
            var spin = new SpinWait();
            while (anon.Rwsem.WaitingWriters == 0 && splitter.IsAlive) spin.SpinOnce();
            splitWaited = anon.Rwsem.WaitingWriters != 0;
            splitDoneEarly = !splitter.IsAlive;
        };
        m.Release();
        TestHooks.Callback = null;
        Assert.That(splitter!.Join(Watchdog), Is.True);

        Assert.That(splitDoneEarly, Is.False, "the VMA split ran while the walk held the anon_vma rwsem");
        Assert.That(splitWaited, Is.True, "the VMA split did not wait on the anon_vma rwsem");
        Assert.That(P.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(P.Load<ulong>(a), Is.EqualTo(0xA2UL));
        Assert.That(P.Load<ulong>(a + PageSize), Is.EqualTo(0xA3UL));
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// fork racing a walk: fork holds the parent's mmap lock for write, has linked the child's VMA
    /// to the lineage (anon_vma_fork) and not yet copied the page tables when the device evicts
    /// the parent's page. The walk runs (it needs no mmap lock), visits the linked but empty
    /// child, and fork then copies the restored mapping: the child has the page, never a
    /// migration or stale device entry, and sees the parent's data.
    /// </summary>
    [Test]
    public void EvictionBetweenAnonVmaForkAndCopyPageRange_ChildGetsTheRestoredMapping()
    {
        var dev = DmirrorDevice.Create(Machine, 1);
        using var m = dev.Open(P);
        ulong a = Filled(1, 24);
        P.Store(a, 0xA4UL);
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        ulong vmaStart = VmaOf(a).Start;
        bool? evicted = null;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point != TestHookPoint.ForkVmaLinked || !ReferenceEquals(subject, P.Mm) || address != vmaStart || evicted != null) return;
            var evictor = new Thread(() => m.Release());
            evictor.Start();
            evicted = evictor.Join(Watchdog);
        };
        var child = P.Fork();
        TestHooks.Callback = null;

        Assert.That(evicted, Is.True, "the eviction's rmap walk waited for fork's mmap write lock");
        Assert.That(P.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(child.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present), "the child copied the restored mapping");
        Assert.That(child.Load<ulong>(a), Is.EqualTo(0xA4UL));
        child.Store(a, 0xC4UL);   // copy-on-write: the parent keeps its value
        Assert.That(P.Load<ulong>(a), Is.EqualTo(0xA4UL));
        child.Exit();
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// fork racing remove_migration_ptes: the eviction stopped after its unmap (the parent holds
    /// a migration entry), fork runs whole and copies that entry into the child; the eviction's
    /// remove_migration_ptes then finds both — the child's VMA is linked after the parent's — and
    /// leaves no migration entry in either.
    /// </summary>
    [Test]
    public void ForkCopyingAMigrationEntryBeforeRemoveMigrationPtes_LeavesNoMigrationEntry()
    {
        var dev = DmirrorDevice.Create(Machine, 1);
        using var m = dev.Open(P);
        ulong a = Filled(1, 25);
        P.Store(a, 0xA5UL);
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        Process? child = null;
        PteKind copied = PteKind.None;
        TestHooks.Callback = (point, subject, address) =>
        {
            // The release evicts chunk by chunk: stop at the one that unmapped the page.
            if (point != TestHookPoint.MigrateDeviceUnmapped || child != null || P.Mm.EntryAt(a).Kind != PteKind.Migration) return;
            var forker = new Thread(() => child = P.Fork());
            forker.Start();
            Assert.That(forker.Join(Watchdog), Is.True);
            copied = child!.Mm.EntryAt(a).Kind;
        };
        m.Release();
        TestHooks.Callback = null;

        Assert.That(copied, Is.EqualTo(PteKind.Migration), "fork copied the migration entry");
        Assert.That(P.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(child!.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present), "remove_migration_ptes missed the child's entry");
        Assert.That(child.Load<ulong>(a), Is.EqualTo(0xA5UL));
        child.Exit();
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// mremap racing the walk: the eviction stops at its first hit, holding the anon_vma rwsem for
    /// read, and an mremap that moves the page starts; it must wait on the rwsem (take_rmap_locks)
    /// rather than move the entry under the walk. Whatever order the rest takes, no migration
    /// entry is left behind: the page ends mapped at its new address with its data.
    /// </summary>
    [Test]
    public void MremapRacingAnEvictionWalk_LeavesNoMigrationEntryBehind([Values(false, true)] bool duringTheWalk)
    {
        var dev = DmirrorDevice.Create(Machine, 1);
        using var m = dev.Open(P);
        ulong a = Filled(1, 26);
        P.Store(a, 0xA6UL);
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        ulong target = Filled(1, 27);
        var anon = VmaOf(a).Anon!;
        ulong moved = 0;
        Thread? mover = null;
        bool moverWaited = false;
        PteKind movedEntry = PteKind.None;
        var stopAt = duringTheWalk ? TestHookPoint.TryToMigrateHit : TestHookPoint.MigrateDeviceUnmapped;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point != stopAt || mover != null) return;
            // The release evicts chunk by chunk: stop at the one that unmapped the page.
            if (!duringTheWalk && P.Mm.EntryAt(a).Kind != PteKind.Migration) return;
            mover = new Thread(() => moved = P.Mremap(a, PageSize, PageSize, MremapFlags.MayMove | MremapFlags.Fixed, target));
            mover.Start();
            if (duringTheWalk)
            {
                var spin = new SpinWait();
                while (anon.Rwsem.WaitingWriters == 0 && mover.IsAlive) spin.SpinOnce();
                moverWaited = anon.Rwsem.WaitingWriters != 0;
            }
            else
            {
                Assert.That(mover.Join(Watchdog), Is.True);
                movedEntry = P.Mm.EntryAt(target).Kind;
            }
        };
        m.Release();
        TestHooks.Callback = null;
        Assert.That(mover!.Join(Watchdog), Is.True);

        if (duringTheWalk) Assert.That(moverWaited, Is.True, "mremap did not wait on the anon_vma rwsem the walk holds");
        else Assert.That(movedEntry, Is.EqualTo(PteKind.Migration), "mremap moved the migration entry");
        Assert.That(moved, Is.EqualTo(target));
        Assert.That(P.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.None));
        Assert.That(P.Mm.EntryAt(moved).Kind, Is.EqualTo(PteKind.Present), "a migration entry was left behind");
        Assert.That(P.Load<ulong>(moved), Is.EqualTo(0xA6UL));
        m.Close();
        Machine.CheckInvariants();
    }
}
