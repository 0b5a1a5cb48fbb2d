using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>
/// Issue 9, cause 1 — the PTE audit: every path that builds a CPU entry from a VMA follows
/// vma->vm_page_prot (protection_map through vm_get_page_prot, then vma_set_page_prot). A private
/// writable mapping has the copy-on-write protection (PAGE_COPY: no write), so only a write fault
/// — or an mprotect upgrade of an exclusive anonymous page — makes an entry writable; a shared
/// writable mapping has PAGE_SHARED unless it wants write notifications (a regular file), in which
/// case its first write to a clean page faults to dirty it. Each path: private versus shared,
/// read versus write fault.
/// </summary>
public class PageProtectionTests
{
    private static Pte Entry(Process p, ulong addr) => p.Mm.EntryAt(addr);

    private static void AssertEntry(Process p, ulong addr, bool writable, string what)
    {
        var e = Entry(p, addr);
        Assert.That(e.Kind, Is.EqualTo(PteKind.Present), what);
        Assert.That(e.IsWritable, Is.EqualTo(writable), what);
    }

    /// <summary>A device file whose mmap vm_insert_pages a zeroed kernel page everywhere (dmirror_fops_mmap).</summary>
    private sealed class InsertingDeviceFile(Machine machine) : IVmOperations
    {
        public Errno Mmap(Vma vma)
        {
            for (ulong a = vma.Start; a < vma.End; a += P)
            {
                if (!SystemPages.TryAllocateKernelPage(machine, out ulong pfn)) return Errno.ENOMEM;
                var e = vma.InsertPage(a, pfn);
                SystemPages.PutKernelPage(machine, pfn);
                if (e != Errno.Ok) return e;
            }
            return Errno.Ok;
        }

        public void Close(Vma vma) { }
    }

    // ---- vm_insert_page ------------------------------------------------------------------------

    [Test]
    public void VmInsertPage_PrivateWritable_IsCopyOnWrite_ReadKeepsIt_WriteCopies()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.MmapDevice(2 * P, RW, MapFlags.Private, new InsertingDeviceFile(machine));
        AssertEntry(p, a, writable: false, "inserted into a private writable mapping: PAGE_COPY");
        ulong driverPage = Entry(p, a).Pfn;
        Assert.That(p.Load<int>(a), Is.Zero);
        AssertEntry(p, a, writable: false, "a read fault changes nothing");
        Assert.That(Entry(p, a).Pfn, Is.EqualTo(driverPage));
        p.Store(a, 5);
        AssertEntry(p, a, writable: true, "the write fault made a private copy");
        Assert.That(Entry(p, a).Pfn, Is.Not.EqualTo(driverPage));
        AssertEntry(p, a + P, writable: false, "the other page is untouched");
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void VmInsertPage_SharedWritable_IsWritable_WriteUsesTheDriversPage()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.MmapDevice(P, RW, MapFlags.Shared, new InsertingDeviceFile(machine));
        AssertEntry(p, a, writable: true, "inserted into a shared writable mapping: PAGE_SHARED");
        ulong driverPage = Entry(p, a).Pfn;
        p.Store(a, 5);
        Assert.That(Entry(p, a).Pfn, Is.EqualTo(driverPage));
        ulong ro = p.MmapDevice(P, Prot.Read, MapFlags.Shared, new InsertingDeviceFile(machine));
        AssertEntry(p, ro, writable: false, "shared read-only");
        Assert.Throws<SegmentationFault>(() => p.Store(ro, 1));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void VmInsertPage_BadFlagsAreEinvalAndMapNothing()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        long used = machine.UsedPages;
        foreach (var flags in new[] { MapFlags.None, MapFlags.Private | MapFlags.Anonymous, MapFlags.Shared | MapFlags.Populate, MapFlags.Private | MapFlags.HugeTlb })
        {
            var ex = Assert.Throws<ErrnoException>(() => p.MmapDevice(P, RW, flags, new InsertingDeviceFile(machine)));
            Assert.That(ex!.Errno, Is.EqualTo(Errno.EINVAL), flags.ToString());
        }
        Assert.That(p.Mm.Vmas, Is.Empty);
        Assert.That(machine.UsedPages, Is.EqualTo(used));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // ---- file read faults (do_read_fault / do_shared_fault / do_cow_fault, hugetlb_no_page) ----

    [Test]
    public void FileFault_PrivateMapping_ReadIsReadOnly_WriteCopies()
    {
        using var machine = NewMachine();
        var f = machine.CreateFile(2 * P);
        f.Pwrite(0, new byte[] { 9 });
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, MapFlags.Private, f);
        Assert.That(p.Load<byte>(a), Is.EqualTo(9));
        AssertEntry(p, a, writable: false, "private read fault maps the page-cache page read-only");
        ulong cached = Entry(p, a).Pfn;
        p.Store<byte>(a, 1);
        AssertEntry(p, a, writable: true, "private write fault: an anonymous copy");
        Assert.That(Entry(p, a).Pfn, Is.Not.EqualTo(cached));
        var back = new byte[1];
        f.Pread(0, back);
        Assert.That(back[0], Is.EqualTo(9), "the file is untouched");
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void FileFault_SharedFileMapping_ReadIsReadOnlyForWriteNotify_WriteDirtiesInPlace()
    {
        using var machine = NewMachine();
        var f = machine.CreateFile(P);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, MapFlags.Shared, f);
        Assert.That(p.Load<byte>(a), Is.Zero);
        AssertEntry(p, a, writable: false, "a regular file wants write notifications: clean pages map read-only");
        ulong cached = Entry(p, a).Pfn;
        p.Store<byte>(a, 3);
        AssertEntry(p, a, writable: true, "the write fault dirties the page in place");
        Assert.That(Entry(p, a).Pfn, Is.EqualTo(cached));
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void FileFault_SharedAnonymous_ReadIsWritable()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, SharedAnon);
        Assert.That(p.Load<int>(a), Is.Zero);
        AssertEntry(p, a, writable: true, "shmem has no write notifications: PAGE_SHARED on a read fault");
        ulong ro = p.Mmap(P, Prot.Read, SharedAnon);
        Assert.That(p.Load<int>(ro), Is.Zero);
        AssertEntry(p, ro, writable: false, "shared read-only");
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void FileFault_AnonymousPrivate_ReadMapsTheZeroPageReadOnly_WriteIsWritable()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Assert.That(p.Load<int>(a), Is.Zero);
        AssertEntry(p, a, writable: false, "the zero page");
        Assert.That(p.Mm.IsZeroPfn(Entry(p, a).Pfn), Is.True);
        p.Store(a + P, 1);
        AssertEntry(p, a + P, writable: true, "a fresh exclusive page");
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void HugeTlbFault_Private_ReadIsReadOnly_WriteReusesTheNewPage()
    {
        using var machine = NewMachine(hugeTlbPages: 2);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, PrivAnon | MapFlags.HugeTlb);
        Assert.That(p.Load<int>(a), Is.Zero);
        AssertEntry(p, a, writable: false, "hugetlb_no_page maps a private page read-only");
        ulong page = Entry(p, a).Pfn;
        p.Store(a, 4);
        AssertEntry(p, a, writable: true, "hugetlb_wp reuses the exclusive page");
        Assert.That(Entry(p, a).Pfn, Is.EqualTo(page));
        Assert.That(machine.HugeTlbFreePages, Is.EqualTo(1), "no copy was made");
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void HugeTlbFault_Shared_ReadIsWritable()
    {
        using var machine = NewMachine(hugeTlbPages: 2);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Huge, RW, SharedAnon | MapFlags.HugeTlb);
        Assert.That(p.Load<int>(a), Is.Zero);
        AssertEntry(p, a, writable: true, "hugetlbfs has no write notifications");
        ulong ro = p.Mmap(Huge, Prot.Read, SharedAnon | MapFlags.HugeTlb);
        Assert.That(p.Load<int>(ro), Is.Zero);
        AssertEntry(p, ro, writable: false, "shared read-only");
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // ---- MAP_POPULATE (populate_vma_page_range) --------------------------------------------------

    [Test]
    public void Populate_PrivateWritableFile_BreaksCowUpFront()
    {
        using var machine = NewMachine();
        var f = machine.CreateFile(3 * P);
        f.Pwrite(P, new byte[] { 7 });
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(3 * P, RW, MapFlags.Private | MapFlags.Populate, f);
        for (ulong i = 0; i < 3; i++) AssertEntry(p, a + i * P, writable: true, $"page {i}: FOLL_WRITE populated an anonymous copy");
        Assert.That(p.Mm.RssAnon, Is.EqualTo(3));
        Assert.That(p.Load<byte>(a + P), Is.EqualTo(7));
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void Populate_PrivateReadOnlyFile_MapsPageCacheReadOnly()
    {
        using var machine = NewMachine();
        var f = machine.CreateFile(2 * P);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, Prot.Read, MapFlags.Private | MapFlags.Populate, f);
        for (ulong i = 0; i < 2; i++) AssertEntry(p, a + i * P, writable: false, $"page {i}");
        Assert.That(p.Mm.RssAnon, Is.Zero);
        Assert.That(p.Mm.RssFile, Is.EqualTo(2));
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void Populate_Shared_ReadFaultsFollowThePageProtection()
    {
        using var machine = NewMachine();
        var f = machine.CreateFile(P);
        var p = machine.CreateProcess("app");
        ulong file = p.Mmap(P, RW, MapFlags.Shared | MapFlags.Populate, f);
        AssertEntry(p, file, writable: false, "regular file: read fault, write-notify");
        ulong shm = p.Mmap(P, RW, SharedAnon | MapFlags.Populate);
        AssertEntry(p, shm, writable: true, "shmem: read fault, PAGE_SHARED");
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    // ---- mprotect upgrades (change_protection, MM_CP_TRY_CHANGE_WRITABLE) -------------------------

    [Test]
    public void Mprotect_PrivateUpgrade_MakesOnlyExclusiveAnonPagesWritable()
    {
        using var machine = NewMachine();
        var f = machine.CreateFile(P);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        p.Store(a + 2 * P, 3);               // shared with the child after fork
        var child = p.Fork();
        child.Exit();
        p.Store(a, 1);                       // exclusive anonymous pages
        p.Store(a + 3 * P, 4);
        Assert.That(p.Load<int>(a + P), Is.Zero);   // the zero page
        ulong file = p.Mmap(P, RW, MapFlags.Private, f);
        Assert.That(p.Load<int>(file), Is.Zero);   // page-cache page
        p.Mprotect(a, 4 * P, Prot.Read);
        p.Mprotect(file, P, Prot.Read);
        for (ulong i = 0; i < 4; i++) AssertEntry(p, a + i * P, writable: false, $"page {i} after PROT_READ");
        p.Mprotect(a, 4 * P, RW);
        p.Mprotect(file, P, RW);
        AssertEntry(p, a, writable: true, "exclusive anonymous page: upgraded at once");
        AssertEntry(p, a + P, writable: false, "zero page: still needs the COW fault");
        AssertEntry(p, a + 2 * P, writable: false, "shared at fork: not exclusive, even with the child gone (the next write fault decides)");
        AssertEntry(p, a + 3 * P, writable: true, "first written after the fork: exclusive");
        AssertEntry(p, file, writable: false, "page-cache page in a private mapping: still needs the COW fault");
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void Mprotect_PrivateUpgrade_PageSharedAfterForkStaysReadOnly()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, PrivAnon);
        p.Store(a, 1);
        var child = p.Fork();
        p.Mprotect(a, P, Prot.Read);
        p.Mprotect(a, P, RW);
        AssertEntry(p, a, writable: false, "shared with the child: not exclusive");
        p.Store(a, 2);
        Assert.That(child.Load<int>(a), Is.EqualTo(1), "the write copied");
        machine.CheckInvariants();
        child.Exit();
        ExitAll(machine);
    }

    [Test]
    public void Mprotect_SharedUpgrade_FollowsThePageProtection()
    {
        using var machine = NewMachine();
        var f = machine.CreateFile(2 * P);
        var p = machine.CreateProcess("app");
        ulong shm = p.Mmap(P, Prot.Read, SharedAnon);
        Assert.That(p.Load<int>(shm), Is.Zero);
        AssertEntry(p, shm, writable: false, "shared read-only");
        p.Mprotect(shm, P, RW);
        AssertEntry(p, shm, writable: true, "shmem: the new PAGE_SHARED itself is writable");
        ulong file = p.Mmap(2 * P, RW, MapFlags.Shared, f);
        p.Store(file, 1);                    // dirty
        Assert.That(p.Load<int>(file + P), Is.Zero);   // clean
        p.Mprotect(file, 2 * P, Prot.Read);
        p.Mprotect(file, 2 * P, RW);
        AssertEntry(p, file, writable: true, "dirty page of a write-notify mapping: no notification owed");
        AssertEntry(p, file + P, writable: false, "clean page: the file system still wants its write fault");
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    // ---- mremap (move_ptes) -----------------------------------------------------------------------

    [Test]
    public void Mremap_MovedEntriesKeepTheirProtection()
    {
        using var machine = NewMachine();
        var f = machine.CreateFile(2 * P);
        var p = machine.CreateProcess("app");
        ulong priv = p.Mmap(2 * P, RW, MapFlags.Private, f);
        Assert.That(p.Load<int>(priv), Is.Zero);
        p.Store(priv + P, 2);
        ulong shm = p.Mmap(P, RW, SharedAnon);
        Assert.That(p.Load<int>(shm), Is.Zero);
        ulong movedPriv = p.Mremap(priv, 2 * P, 2 * P, MremapFlags.MayMove | MremapFlags.Fixed, 0x5000_0000_0000);
        ulong movedShm = p.Mremap(shm, P, P, MremapFlags.MayMove | MremapFlags.Fixed, 0x5000_1000_0000);
        AssertEntry(p, movedPriv, writable: false, "private read-faulted file page stays copy-on-write");
        AssertEntry(p, movedPriv + P, writable: true, "private anonymous copy stays writable");
        AssertEntry(p, movedShm, writable: true, "shmem entry stays writable");
        p.Store(movedPriv, 1);
        var back = new byte[4];
        f.Pread(0, back);
        Assert.That(back, Is.All.Zero, "the moved COW entry still copies on write");
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    // ---- fork (copy_present_pte) -------------------------------------------------------------------

    [Test]
    public void Fork_PrivateWriteProtectsBothSides_SharedIsNotCopied()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong priv = p.Mmap(P, RW, PrivAnon);
        p.Store(priv, 1);
        ulong shm = p.Mmap(P, RW, SharedAnon);
        p.Store(shm, 2);
        ulong dev = p.MmapDevice(P, RW, MapFlags.Private, new InsertingDeviceFile(machine));
        var child = p.Fork();
        AssertEntry(p, priv, writable: false, "parent: COW");
        AssertEntry(child, priv, writable: false, "child: COW");
        AssertEntry(p, dev, writable: false, "private device mapping: still COW in the parent");
        AssertEntry(child, dev, writable: false, "private device mapping: COW in the child (VM_MIXEDMAP page tables are copied)");
        AssertEntry(p, shm, writable: true, "shared: the parent's entry is untouched");
        Assert.That(Entry(child, shm).Kind, Is.EqualTo(PteKind.None), "shared mappings are not copied: the child faults");
        Assert.That(child.Load<int>(shm), Is.EqualTo(2));
        AssertEntry(child, shm, writable: true, "the child's read fault on shmem maps PAGE_SHARED");
        machine.CheckInvariants();
        child.Exit();
        ExitAll(machine);
    }

    // ---- remove_migration_ptes ----------------------------------------------------------------------

    [Test]
    public void RemoveMigrationPtes_RestoresWriteOnlyFromTheEntry()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        var child = p.Fork();   // both pages read-only, shared
        child.Exit();
        p.Store(a + P, 77);     // page 1 copied: exclusive and writable
        Assert.That(dev.MigrateToDevice(p, a, 2), Is.EqualTo(2));
        Assert.That(Entry(p, a).IsWritable, Is.False, "device-private entry of a read-only page");
        Assert.That(Entry(p, a + P).IsWritable, Is.True, "device-private entry of a writable page");
        Assert.That(dev.MigrateToSystem(p, a, 2), Is.EqualTo(2));
        AssertEntry(p, a, writable: false, "PAGE_COPY plus a readable migration entry: read-only");
        AssertEntry(p, a + P, writable: true, "writable migration entry: writable");
        ulong page0 = Entry(p, a).Pfn;
        p.Store(a, 5);
        Assert.That(Entry(p, a).Pfn, Is.EqualTo(page0), "the migrated page is exclusive: the write reuses it");
        ExitAllAndCheckDevices(machine, dev);
    }

    [Test]
    public void RemoveMigrationPtes_AfterMprotect_ComesBackReadOnly()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, PrivAnon);
        Fill(p, a, 1);
        Assert.That(dev.MigrateToDevice(p, a, 1), Is.EqualTo(1));
        p.Mprotect(a, P, Prot.Read);
        p.Mprotect(a, P, RW);
        Assert.That(Entry(p, a).IsWritable, Is.False, "mprotect downgrades a writable device-private entry and never upgrades one");
        Assert.That(dev.MigrateToSystem(p, a, 1), Is.EqualTo(1));
        AssertEntry(p, a, writable: false, "readable migration entry");
        AssertFilled(p, a, 1);
        ExitAllAndCheckDevices(machine, dev);
    }

    // ---- device-exclusive restore (restore_exclusive_pte) ----------------------------------------------

    private static void MakeExclusive(Process p, ulong addr, object owner)
    {
        p.Mm.MmapLock.ReadLock();
        try
        {
            Assert.That(DeviceExclusive.Make(p.Mm, addr, owner, out var page), Is.EqualTo(Errno.Ok));
            page.Dispose();
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
    }

    [Test]
    public void DeviceExclusiveRestore_WritableEntryInWritableVma_IsWritable()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, PrivAnon);
        p.Store(a, 1);
        MakeExclusive(p, a, new object());
        Assert.That(Entry(p, a).Kind, Is.EqualTo(PteKind.DeviceExclusive));
        Assert.That(p.Load<int>(a), Is.EqualTo(1));   // a CPU read restores it
        AssertEntry(p, a, writable: true, "restored from a writable exclusive entry");
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void DeviceExclusiveRestore_AfterMprotectRoundTrip_IsReadOnly_ThenWriteReuses()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, PrivAnon);
        p.Store(a, 1);
        MakeExclusive(p, a, new object());
        ulong page = Entry(p, a).Pfn;
        p.Mprotect(a, P, Prot.Read);
        p.Mprotect(a, P, RW);
        Assert.That(Entry(p, a).Kind, Is.EqualTo(PteKind.DeviceExclusive));
        Assert.That(Entry(p, a).IsWritable, Is.False, "mprotect made the exclusive entry readable");
        Assert.That(p.Load<int>(a), Is.EqualTo(1));
        AssertEntry(p, a, writable: false, "restored from a readable exclusive entry");
        p.Store(a, 2);
        AssertEntry(p, a, writable: true, "the write fault reuses the exclusive page");
        Assert.That(Entry(p, a).Pfn, Is.EqualTo(page));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void DeviceExclusiveRestore_InProtNoneVma_IsProtNone()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, PrivAnon);
        p.Store(a, 1);
        MakeExclusive(p, a, new object());
        p.Mprotect(a, P, Prot.None);
        var child = p.Fork();   // fork restores the exclusive entry (try_restore_exclusive_pte)
        var e = Entry(p, a);
        Assert.That(e.Kind, Is.EqualTo(PteKind.Present));
        Assert.That(e.IsProtNone, Is.True, "vm_page_prot is PAGE_NONE");
        Assert.That(e.IsWritable, Is.False);
        Assert.Throws<SegmentationFault>(() => p.Load<int>(a));
        machine.CheckInvariants();
        child.Exit();
        ExitAll(machine);
    }
}
