using Hmm.Runtime;
using Hmm.Runtime.Interleaving;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Stress;

/// <summary>
/// One deterministic regression test per failure of issue 8: each forces the racy interleaving
/// with the runtime's test hooks (<see cref="TestHooks"/>) and barriers, never with sleeps. A
/// watchdog bound (<see cref="Watchdog"/>) only turns a deadlock of the old code into a failure.
/// </summary>
[NonParallelizable]
public partial class RaceRegressionTests : Dmirror.DmirrorTestBase
{
    private static readonly TimeSpan Watchdog = TimeSpan.FromSeconds(30);

    [TearDown]
    public void RemoveHook() => TestHooks.Callback = null;

    /// <summary>
    /// Failure 1 (data loss): a CPU store that translated its address just before a migration
    /// unmapped the page must land in the data the migration copies. migrate_vma_collect's
    /// flush_tlb_range waits for the access in flight (the simulated TLB shootdown); before, the
    /// copy raced the store and the CPU then read the old value back.
    /// </summary>
    [Test]
    public void CpuStoreInFlightWhenAMigrationUnmapsThePage_IsCopiedNotLost([Values(0, 2)] int minor)
    {
        var dev = DmirrorDevice.Create(Machine, minor);
        using var m = dev.Open(P);
        ulong a = Filled(1, 5);
        P.Store(a, 0x1111UL);
        int cpuThread = 0;
        bool flushWaitedForTheStore = false;
        using var translated = new ManualResetEventSlim();
        using var flushWaiting = new ManualResetEventSlim();
        using var migrated = new ManualResetEventSlim();
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point == TestHookPoint.CpuAccessTranslated && address == a && Environment.CurrentManagedThreadId == Volatile.Read(ref cpuThread))
            {
                translated.Set();
                // Stay inside the access until the migration either waits for it (fixed) or completes without waiting (the bug).
                flushWaitedForTheStore = WaitHandle.WaitAny([flushWaiting.WaitHandle, migrated.WaitHandle]) == 0;
            }
            else if (point == TestHookPoint.TlbFlushWaiting && ReferenceEquals(subject, P.Mm.Tlb)) flushWaiting.Set();
        };
        var cpu = new Thread(() =>
        {
            Volatile.Write(ref cpuThread, Environment.CurrentManagedThreadId);
            P.Store(a, 0x2222UL);
        });
        var mirror = Mirror(1);
        Errno e = Errno.EINVAL;
        var migrator = new Thread(() =>
        {
            translated.Wait();
            e = m.MigrateToDevice(a, 1, mirror, out _);
            migrated.Set();
        });
        cpu.Start();
        migrator.Start();
        Assert.That(cpu.Join(Watchdog) && migrator.Join(Watchdog), Is.True, "threads did not finish");
        TestHooks.Callback = null;

        Assert.That(flushWaitedForTheStore, Is.True, "the migration copied the page while a CPU store to it was in flight");
        Assert.That(e, Is.EqualTo(Errno.Ok));
        Assert.That(BitConverter.ToUInt64(mirror, 0), Is.EqualTo(0x2222UL), "the device copy misses the store");
        Assert.That(P.Load<ulong>(a), Is.EqualTo(0x2222UL));
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// Failure 2 (PAGE-R03 from finalize) — and the lost wake-ups behind failures 3 and 4: fork
    /// clearing PageAnonExclusive and the write-fault reuse path setting it did a plain
    /// read-modify-write of page->flags, which could erase (or resurrect) the folio lock bit a
    /// migration set meanwhile with its CAS. The interleaving lies inside one read-modify-write,
    /// where no hook can stand; this test runs the exact production pair — a lock holder
    /// (migrate_vma collect / finalize) against fork + COW-reuse on the same page — and checks
    /// every lock and unlock.
    /// </summary>
    [Test]
    public void ForkAndCowReuseRacingTheFolioLock_NeverLoseTheLockBit()
    {
        // Enough rounds that the non-atomic flag updates of the old runtime lose a lock bit in
        // most runs (a race test: the window lies inside one read-modify-write).
        const int Iterations = 12000;
        ulong a = Filled(1, 7);
        ulong pfn = P.Mm.EntryAt(a).Pfn;
        using var start = new Barrier(2);
        int stop = 0;
        Exception? lockerFailure = null;
        long locks = 0;
        var locker = new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                while (Volatile.Read(ref stop) == 0)
                {
                    // Only this thread ever locks the page: a failed trylock means a lost unlock,
                    // a PAGE-R03 from the unlock a lost lock bit.
                    if (!Machine.TryLockPage(pfn)) throw new InvalidOperationException("the page stayed locked after its unlock (lost unlock)");
                    Machine.UnlockPage(pfn);
                    locks++;
                }
            }
            catch (Exception e) { lockerFailure = e; }
        });
        locker.Start();
        start.SignalAndWait();
        for (int i = 0; i < Iterations && lockerFailure == null; i++)
        {
            var child = P.Fork();          // copy_present_pte: ClearPageAnonExclusive
            child.Exit();
            P.Store(a, (ulong)i);          // do_wp_page reuse: SetPageAnonExclusive
        }
        Volatile.Write(ref stop, 1);
        locker.Join();
        Assert.That(lockerFailure, Is.Null);
        Assert.That(locks, Is.GreaterThan(0));
        Assert.That(Machine.Frames.Flags(pfn) & PageFlags.Locked, Is.EqualTo(PageFlags.None));
        Assert.That(P.Load<ulong>(a), Is.EqualTo((ulong)(Iterations - 1)));
        Machine.CheckInvariants();
    }

    /// <summary>
    /// Failure 3 (MM-R06 livelock): try_to_migrate found the child's mapping of a page the parent
    /// migrates, then the child's COW fault replaced it with a copy before the conversion. The
    /// conversion must re-validate under the PTL that the entry still maps the folio
    /// (page_vma_mapped_walk); before, it turned the child's new page into a migration entry that
    /// no finalize would ever remove, and the child's next access spun until MM-R06.
    /// </summary>
    [Test]
    public void CowFaultBetweenTryToMigrateProbeAndConversion_LeavesNoStaleMigrationEntry([Values(0, 2)] int minor)
    {
        var dev = DmirrorDevice.Create(Machine, minor);
        using var m = dev.Open(P);
        ulong a = Filled(1, 9);
        P.Store(a, 0xAAAAUL);
        var child = P.Fork();
        bool raced = false;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point != TestHookPoint.TryToMigrateHit || !ReferenceEquals(subject, child.Mm) || raced) return;
            raced = true;
            // The child writes its copy of the page now, from its own thread.
            var writer = new Thread(() => child.Store(a, 0xCCCCUL));
            writer.Start();
            writer.Join();
        };
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        TestHooks.Callback = null;

        Assert.That(raced, Is.True, "the interleaving was not forced");
        Assert.That(child.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present), "the child's new page was left as a migration entry");
        Assert.That(child.Load<ulong>(a), Is.EqualTo(0xCCCCUL));
        Assert.That(P.Load<ulong>(a), Is.EqualTo(0xAAAAUL));
        child.Exit();
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// Failure 4 (deadlock): a migration holds the mmap lock for read (and its folio locks), an
    /// mprotect waits for the write lock, and an eviction's reverse-map walk needs the same mm.
    /// The kernel's rmap walk takes the anon_vma lock, not mmap_lock, so it never queues behind
    /// the waiting writer; the simulator's walk queued behind it and closed the cycle whenever
    /// the read holder needed the walker (devmem_lock, a folio lock).
    /// </summary>
    [Test]
    public void EvictionWalkWhileAMmapWriterWaitsBehindAMigration_DoesNotQueueBehindTheWriter()
    {
        var dev0 = DmirrorDevice.Create(Machine, 0);
        var dev1 = DmirrorDevice.Create(Machine, 1);
        using var m0 = dev0.Open(P);
        using var m1 = dev1.Open(P);
        ulong a = Filled(1, 11), b = Filled(1, 12);
        ulong other = Filled(1, 13);
        P.Store(a, 0xA0UL);
        P.Store(b, 0xB0UL);
        Assert.That(m1.MigrateToDevice(b, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        Thread? writer = null;
        bool evictionDone = false;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point != TestHookPoint.MigrateVmaSetUp || address != a || writer != null) return;
            // We hold P's mmap lock for read and a's folio lock. An mmap writer queues up ...
            writer = new Thread(() => P.Mprotect(other, PageSize, Prot.Read));
            writer.Start();
            var spin = new SpinWait();
            while (P.Mm.MmapLock.WaitingWriters == 0) spin.SpinOnce();
            // ... and an eviction walks the rmap of P: it must get through.
            var evictor = new Thread(() => m1.Release());
            evictor.Start();
            evictionDone = evictor.Join(Watchdog);
        };
        Assert.That(m0.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        TestHooks.Callback = null;
        Assert.That(writer!.Join(Watchdog), Is.True);

        Assert.That(evictionDone, Is.True, "the eviction's rmap walk queued behind the waiting mmap writer (deadlock)");
        Assert.That(P.Load<ulong>(a), Is.EqualTo(0xA0UL));
        Assert.That(P.Load<ulong>(b), Is.EqualTo(0xB0UL));
        Assert.That(P.Mm.EntryAt(b).Kind, Is.EqualTo(PteKind.Present), "the evicted page is back in system memory");
        m0.Close();
        m1.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// Failure 5 (MIG-R02 escapes): a CPU fault read a device-private entry; before it handled it,
    /// the page migrated back to system memory and was freed to the driver. do_swap_page re-checks
    /// the entry under the PTL and only then trylocks and references the page; before, the fault
    /// took a reference on the freed page first and its put freed it a second time, so the driver
    /// handed the same device page out twice and the next migration's allocation threw between
    /// setup and finalize (reported as MIG-R02 by the disposed migration).
    /// </summary>
    [Test]
    public void DevicePrivateFaultOnAPageFreedMeanwhile_DoesNotTouchThePage()
    {
        var dev = DmirrorDevice.Create(Machine, 0);
        using var m = dev.Open(P);
        ulong a = Filled(1, 15);
        P.Store(a, 0x5555UL);
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        ulong devicePage = P.Mm.EntryAt(a).Pfn;
        (int Pages, int Folios) freeBefore = default, freeAfterMigration = default;
        bool raced = false;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point != TestHookPoint.DevicePrivateEntryRead || address != a || raced) return;
            raced = true;
            freeBefore = dev.FreeListLengths;
            var other = new Thread(() => m.MigrateToSystem(a, 1, out _));
            other.Start();
            other.Join();
            freeAfterMigration = dev.FreeListLengths;
        };
        Assert.That(P.Load<ulong>(a), Is.EqualTo(0x5555UL));
        TestHooks.Callback = null;

        Assert.That(raced, Is.True, "the interleaving was not forced");
        Assert.That(freeAfterMigration.Pages, Is.EqualTo(freeBefore.Pages + 1), "the migration freed the device page");
        Assert.That(dev.FreeListLengths, Is.EqualTo(freeAfterMigration), "the stale fault freed the device page a second time");
        Assert.That(Machine.Frames.RefCount(devicePage), Is.Zero);
        // The page is handed out once, and works.
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        Assert.That(P.Load<ulong>(a), Is.EqualTo(0x5555UL));
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// Failure 6 (false MIG-R08): migrate_to_ram could not collect the faulting page — a racing
    /// reference failed the refcount check — and returned 0. In Linux the CPU simply faults again;
    /// only a fault that never makes progress is MIG-R08. The first attempt here holds an extra
    /// reference across migrate_to_ram, the second does not.
    /// </summary>
    [Test]
    public void MigrateToRamThatCouldNotCollectOnce_IsRetriedNotReported()
    {
        var dev = DmirrorDevice.Create(Machine, 0);
        using var m = dev.Open(P);
        ulong a = Filled(1, 17);
        P.Store(a, 0x6666UL);
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        ulong devicePage = P.Mm.EntryAt(a).Pfn;
        int attempts = 0;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point != TestHookPoint.BeforeMigrateToRam || address != a) return;
            // First attempt: another user holds a reference (as a concurrent fault or GUP would).
            if (++attempts == 1) Machine.GetPage(devicePage);
            else if (attempts == 2) Machine.PutPage(devicePage);
        };
        Assert.That(P.Load<ulong>(a), Is.EqualTo(0x6666UL));
        TestHooks.Callback = null;

        Assert.That(attempts, Is.EqualTo(2), "the first migrate_to_ram should fail to collect, the retry succeed");
        Assert.That(P.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        m.Close();
        Machine.CheckInvariants();
    }
}
