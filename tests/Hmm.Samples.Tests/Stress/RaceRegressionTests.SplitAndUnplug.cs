using Hmm.Runtime;
using Hmm.Runtime.Interleaving;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Stress;

/// <summary>
/// The two races the stress variants <c>Everything</c> and <c>DeviceMemoryRemoval</c> found after
/// the first six were fixed: a THP split losing a concurrent reference (PAGE-R01), and a device
/// access racing the unplug of its device memory (PAGE-R02).
/// </summary>
public partial class RaceRegressionTests
{
    /// <summary>
    /// PAGE-R01: split_huge_page rewrote the subpages' refcounts in place after checking the
    /// head's, so a reference taken in between — here a GUP pin of another subpage — stayed on the
    /// old head and was lost: the unpin then found no pin on its page (or the page was freed while
    /// mapped). The split now unmaps the folio (migration entries) and freezes its refcount
    /// (folio_ref_freeze) before rewriting anything, so the pin waits on the migration entry and
    /// lands on the subpage it maps once the split is done.
    /// </summary>
    [Test]
    public void PinOfASubpageWhileItsThpIsSplit_LandsOnTheSubpageNotLost([Values(0, 2)] int minor)
    {
        var dev = DmirrorDevice.Create(Machine, minor);
        using var m = dev.Open(P);
        ulong buf = P.Mmap(Page.PmdSize, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        P.Madvise(buf, Page.PmdSize, Advice.HugePage);
        P.Write(buf, Pattern(Page.PmdPages, 21));
        Assert.That(P.Mm.EntryAt(buf).IsHuge, Is.True, "the region should be one PMD-mapped THP");
        // PTE-map the folio (the VMA splits, so does the PMD; the folio stays whole).
        P.Mprotect(buf + (ulong)(Page.PmdPages - 1) * PageSize, PageSize, Prot.Read);
        ulong head = P.Mm.EntryAt(buf).Pfn;
        Assert.That(Machine.Frames.Order(head), Is.EqualTo(Page.PmdOrder));

        ulong pinAt = buf + 5UL * PageSize;
        int splits = 0;
        int pinThread = 0;
        PinnedPages? pin = null;
        Exception? pinFailure = null;
        using var pinDoneOrWaiting = new ManualResetEventSlim();
        Thread? pinner = null;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point == TestHookPoint.FolioRefsFrozen && address == head && Interlocked.Increment(ref splits) == 1)
            {
                // The split checked (and now froze) the refcount: a GUP pin of subpage 5 races it.
                pinner = new Thread(() =>
                {
                    Volatile.Write(ref pinThread, Environment.CurrentManagedThreadId);
                    try { pin = P.PinUserPages(pinAt, 1, write: false, longTerm: false); }
                    catch (Exception e) { pinFailure = e; }
                    finally { pinDoneOrWaiting.Set(); }
                });
                pinner.Start();
                // Until the pin either completed (old runtime) or waits on the migration entry the split left.
                Assert.That(pinDoneOrWaiting.Wait(Watchdog), Is.True, "the pin neither completed nor waited");
            }
            else if (point == TestHookPoint.MigrationEntryWait && Environment.CurrentManagedThreadId == Volatile.Read(ref pinThread))
                pinDoneOrWaiting.Set();
        };
        // Migrating one subpage (not the head) makes migrate_vma_collect split the PTE-mapped folio.
        var mirror = Mirror(1);
        Assert.That(m.MigrateToDevice(buf + 3UL * PageSize, 1, mirror, out _), Is.EqualTo(Errno.Ok));
        Assert.That(splits, Is.EqualTo(1), "the migration should have split the folio");
        Assert.That(pinner!.Join(Watchdog), Is.True, "the pin never finished");
        TestHooks.Callback = null;

        Assert.That(pinFailure, Is.Null);
        ulong pfn = P.Mm.EntryAt(pinAt).Pfn;
        Assert.That(pin!.Pfns, Is.EqualTo(new[] { pfn }), "the pin is on the page mapped there");
        Assert.That(Machine.Frames.FolioHead(pfn), Is.EqualTo(pfn), "the folio was split");
        Assert.That(Machine.Frames.PinCount(pfn), Is.EqualTo(1), "the pin was lost by the split");
        Assert.That(Machine.Frames.RefCount(pfn), Is.EqualTo(2), "mapping + pin");
        pin.Dispose();
        Assert.That(CpuRead(buf, 8), Is.EqualTo(Pattern(Page.PmdPages, 21).AsSpan(0, 8 * PageSize).ToArray()));
        Assert.That(mirror, Is.EqualTo(Pattern(Page.PmdPages, 21).AsSpan(3 * PageSize, PageSize).ToArray()));
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// PAGE-R02: a CPU fault read a migration entry (without the PTL) for a device page that an
    /// eviction was moving back to system memory; before the fault looked the page up, the
    /// eviction finished, the page was freed and its device memory unplugged — and the fault's
    /// struct-page lookup hit an offline section. hmm_range_fault (a device Read) had the same
    /// window. Now the page is looked up only under the PTL with the entry re-checked
    /// (migration_entry_wait), so the fault sees the entry changed and simply retries.
    /// </summary>
    [Test]
    public void CpuFaultOnAMigrationEntryWhoseDeviceMemoryIsUnpluggedMeanwhile_Retries()
    {
        int sectionsWithoutDeviceMemory = Machine.Frames.OnlineSections;
        var dev = DmirrorDevice.Create(Machine, 0);
        using var m = dev.Open(P);
        ulong a = Filled(1, 23);
        P.Store(a, 0x7777UL);
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        Assert.That(Machine.Frames.OnlineSections, Is.GreaterThan(sectionsWithoutDeviceMemory));
        Assert.That(P.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.DevicePrivate));
        int cpuThread = 0, evictThread = 0;
        using var entryInstalled = new ManualResetEventSlim();
        using var cpuSawEntry = new ManualResetEventSlim();
        using var released = new ManualResetEventSlim();
        bool cpuWaitedOnTheEntry = false;
        TestHooks.Callback = (point, subject, address) =>
        {
            int me = Environment.CurrentManagedThreadId;
            if (point == TestHookPoint.MigrateDeviceUnmapped && me == Volatile.Read(ref evictThread) && !entryInstalled.IsSet
                && P.Mm.EntryAt(a).Kind == PteKind.Migration)
            {
                // The eviction turned the mapping into a migration entry: let the CPU read it first.
                entryInstalled.Set();
                Assert.That(cpuSawEntry.Wait(Watchdog), Is.True, "the CPU never met the migration entry");
            }
            else if (point == TestHookPoint.MigrationEntryWait && me == Volatile.Read(ref cpuThread) && !cpuSawEntry.IsSet)
            {
                // The fault holds a migration entry read without the PTL; the eviction now
                // completes: the page goes back to RAM, the device page is freed and unplugged.
                cpuWaitedOnTheEntry = true;
                cpuSawEntry.Set();
                Assert.That(released.Wait(Watchdog), Is.True, "the eviction never finished");
            }
        };
        Exception? evictFailure = null, cpuFailure = null;
        ulong loaded = 0;
        var evictor = new Thread(() =>
        {
            Volatile.Write(ref evictThread, Environment.CurrentManagedThreadId);
            try { m.Release(); }
            catch (Exception e) { evictFailure = e; }
            finally { released.Set(); }
        });
        var cpu = new Thread(() =>
        {
            Volatile.Write(ref cpuThread, Environment.CurrentManagedThreadId);
            try
            {
                Assert.That(entryInstalled.Wait(Watchdog), Is.True, "the eviction never unmapped the page");
                loaded = P.Load<ulong>(a);
            }
            catch (Exception e) { cpuFailure = e; }
        });
        evictor.Start();
        cpu.Start();
        Assert.That(evictor.Join(Watchdog) && cpu.Join(Watchdog), Is.True, "threads did not finish");
        TestHooks.Callback = null;

        Assert.That(evictFailure, Is.Null);
        Assert.That(cpuWaitedOnTheEntry, Is.True, "the interleaving was not forced");
        Assert.That(cpuFailure, Is.Null, "the fault looked up the page of a stale migration entry");
        Assert.That(loaded, Is.EqualTo(0x7777UL));
        Assert.That(Machine.Frames.OnlineSections, Is.EqualTo(sectionsWithoutDeviceMemory), "the device memory was unplugged");
        Assert.That(P.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// PAGE-R02, second window (seen in the <c>Everything</c> soak): the last reference of a
    /// device page dropped to 0, and before free_zone_device_folio had finished with the struct
    /// page an unplug saw no page in use and took the memmap offline. The pagemap now counts its
    /// live folios (pgmap->ref: taken by zone_device_page_init, dropped at the very end of the
    /// free), and memunmap_pages waits for it (EBUSY here, the removal retried later).
    /// </summary>
    [Test]
    public void UnplugWhileTheLastDevicePageIsBeingFreed_WaitsForTheFree()
    {
        int sectionsWithoutDeviceMemory = Machine.Frames.OnlineSections;
        var dev = DmirrorDevice.Create(Machine, 0);
        using var m = dev.Open(P);
        ulong a = Filled(1, 29);
        P.Store(a, 0x8888UL);
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        ulong devicePfn = P.Mm.EntryAt(a).Pfn;
        int sectionsWithDeviceMemory = Machine.Frames.OnlineSections;
        Assert.That(sectionsWithDeviceMemory, Is.GreaterThan(sectionsWithoutDeviceMemory));
        int sectionsWhileFreeing = -1;
        Exception? releaseFailure = null;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point != TestHookPoint.DeviceFolioFreeing || address != devicePfn || sectionsWhileFreeing != -1) return;
            // The CPU fault's migrate_to_ram moved the page back; its final put is freeing the
            // device page. An unplug (HMM_DMIRROR_RELEASE) runs to completion right now.
            var release = new Thread(() =>
            {
                try { m.Release(); }
                catch (Exception e) { releaseFailure = e; }
            });
            release.Start();
            Assert.That(release.Join(Watchdog), Is.True, "the release did not finish");
            sectionsWhileFreeing = Machine.Frames.OnlineSections;
        };
        ulong loaded = P.Load<ulong>(a);   // device-private fault: migrate_to_ram, then the last put
        TestHooks.Callback = null;

        Assert.That(releaseFailure, Is.Null);
        Assert.That(sectionsWhileFreeing, Is.EqualTo(sectionsWithDeviceMemory), "the memmap went offline while a device page was being freed");
        Assert.That(loaded, Is.EqualTo(0x8888UL));
        Assert.That(m.Release(), Is.EqualTo(Errno.Ok));   // the pending unplug completes now
        Assert.That(Machine.Frames.OnlineSections, Is.EqualTo(sectionsWithoutDeviceMemory));
        m.Close();
        Machine.CheckInvariants();
    }
}
