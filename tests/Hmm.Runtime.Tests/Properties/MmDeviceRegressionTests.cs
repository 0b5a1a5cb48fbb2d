using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Properties;

/// <summary>Shrunk sequences the device-memory property test found, kept as plain deterministic tests.</summary>
public class MmDeviceRegressionTests
{
    /// <summary>
    /// Migrating a hole of a PROT_NONE anonymous VMA to device memory and back (or inserting a
    /// coherent page there) built an ordinary accessible PTE: a load then succeeded instead of
    /// SIGSEGV. Linux builds these entries from vma->vm_page_prot.
    /// </summary>
    [Test]
    public void MigrationIntoProtNoneVmaKeepsProtNone()
    {
        using (var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 }))
        {
            var dev = new TestDevice(machine, DevicePageKind.Private, 8UL << 20);
            var coh = new TestDevice(machine, DevicePageKind.Coherent, 8UL << 20, "coh");
            var p = machine.CreateProcess("app");
            ulong buf = p.Mmap(4 * 4096, Prot.None, MapFlags.Private | MapFlags.Anonymous);
            Assert.That(dev.MigrateToDevice(p, buf, 2), Is.EqualTo(2));
            Assert.That(dev.MigrateToSystem(p, buf, 2), Is.EqualTo(2));
            Assert.That(coh.MigrateToDevice(p, buf + 2 * 4096, 2), Is.EqualTo(2));
            Assert.Throws<SegmentationFault>(() => p.Load<byte>(buf));
            Assert.Throws<SegmentationFault>(() => p.Load<byte>(buf + 2 * 4096));
            p.Mprotect(buf, 4 * 4096, Prot.Read | Prot.Write);
            Assert.That(p.Load<byte>(buf + 3 * 4096), Is.Zero);
            p.Store<byte>(buf, 1);
            machine.CheckInvariants();
            p.Exit();
            Assert.That(machine.UsedPages, Is.Zero);
            Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
            Assert.That(coh.PageFrees, Is.EqualTo(coh.Allocations));
        }
        MmRunner.Run(new MmCase(true, new Op[]
        {
            new(OpKind.Mmap, 38218239, 1406917090, 2122617491, 2005283136, 1043945978),
            new(OpKind.Migrate, 1333638323, 489064429, 2016583541, 1437584211, 544578676),
            new(OpKind.Migrate, 1860473839, 1359736123, 206612297, 1907649293, 137012022),
            new(OpKind.Read, 789059452, 972078775, 1343121615, 1798798205, 453287635),
        }, Devices: true));
    }

    /// <summary>
    /// A CPU fault on a PTE-mapped subpage of a 2 MiB device-private folio (its PMD split by a
    /// partial munmap) raised SIGBUS: the fault path locked the folio head but passed the subpage
    /// as the fault page, so migrate_vma_setup refused it (not locked) and the folio could not be
    /// split. The fault now splits the folio and hands the driver the locked subpage.
    /// </summary>
    [Test]
    public void FaultOnSubpageOfSplitDeviceThp()
    {
        using (var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20, TransparentHugePages = true }))
        {
            var dev = new TestDevice(machine, DevicePageKind.Private, 8UL << 20) { Compound = true };
            var p = machine.CreateProcess("app");
            ulong buf = p.Mmap(2 << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
            p.Madvise(buf, 2 << 20, Advice.HugePage);
            p.Store(buf + 0x1f1008, 42L);
            Assert.That(dev.MigrateToDevice(p, buf, 512), Is.EqualTo(512));
            Assert.That(p.Mm.EntryAt(buf).IsHuge, Is.True);
            p.Munmap(buf + 0x116000, 0xaf000);
            Assert.That(p.Load<long>(buf + 0x1f1008), Is.EqualTo(42L));
            p.Store(buf + 8, 7L);
            machine.CheckInvariants();
            p.Exit();
            machine.CheckInvariants();
            Assert.That(machine.UsedPages, Is.Zero);
            Assert.That(dev.FreePages, Is.EqualTo((int)dev.Pgmap.PageCount));
        }
        MmRunner.Run(new MmCase(true, new Op[]
        {
            new(OpKind.Mmap, 870527979, 747809204, 738853989, 1858074110, 813063411),
            new(OpKind.Migrate, 751464390, 436915527, 490192321, 1413284470, 1340016542),
            new(OpKind.Mremap, 843105902, 1763817497, 1433712736, 110637457, 856350480),
            new(OpKind.Write, 1508649528, 1938054873, 226945432, 1622074766, 1269820611),
        }, Devices: true));
    }

    /// <summary>
    /// fork restored a device-exclusive entry of a since-mprotect(PROT_NONE)'d page as an
    /// ordinary accessible PTE: a load then succeeded instead of SIGSEGV (Linux rebuilds the entry
    /// from vma->vm_page_prot).
    /// </summary>
    [Test]
    public void ExclusiveEntryRestoredUnderProtNone()
    {
        using (var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 }))
        {
            var p = machine.CreateProcess("app");
            ulong buf = p.Mmap(4 * 4096, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
            p.Store(buf, 5L);
            p.Mm.MmapLock.ReadLock();
            try
            {
                Assert.That(DeviceExclusive.Make(p.Mm, buf, "dev", out var page), Is.EqualTo(Errno.Ok));
                page.Dispose();
            }
            finally { p.Mm.MmapLock.ReadUnlock(); }
            p.Mprotect(buf, 4 * 4096, Prot.None);
            var child = p.Fork();
            Assert.Throws<SegmentationFault>(() => p.Load<long>(buf));
            Assert.Throws<SegmentationFault>(() => child.Load<long>(buf));
            p.Mprotect(buf, 4 * 4096, Prot.Read);
            Assert.That(p.Load<long>(buf), Is.EqualTo(5L));
            Assert.Throws<SegmentationFault>(() => p.Store(buf, 6L));
            machine.CheckInvariants();
            child.Exit();
            p.Exit();
            Assert.That(machine.UsedPages, Is.Zero);
        }
        MmRunner.Run(new MmCase(true, new Op[]
        {
            new(OpKind.Mmap, 1665888796, 99725767, 820382731, 1616110634, 1822390996),
            new(OpKind.Exclusive, 506177731, 1435957623, 503038322, 2030987949, 1313985360),
            new(OpKind.Mprotect, 476455012, 638900578, 59993034, 401067640, 1909691423),
            new(OpKind.Fork, 352360868, 158524403, 1561021290, 414274688, 280230378),
            new(OpKind.Load, 947612606, 941334165, 534840968, 461260743, 1405020451),
        }, Devices: true));
    }

    /// <summary>
    /// MADV_FREE marked a page in coherent device memory lazy-free and reclaim then dropped its
    /// data; device memory is not on the LRU and madvise_free_pte_range skips zone-device folios.
    /// </summary>
    [Test]
    public void MadvFreeLeavesCoherentPagesAlone()
    {
        using (var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 }))
        {
            var coh = new TestDevice(machine, DevicePageKind.Coherent, 8UL << 20, "coh");
            var p = machine.CreateProcess("app");
            ulong buf = p.Mmap(4 * 4096, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
            p.Store(buf + 8, 99L);
            Assert.That(coh.MigrateToDevice(p, buf, 1), Is.EqualTo(1));
            p.Madvise(buf, 4 * 4096, Advice.Free);
            machine.Reclaim();
            Assert.That(p.Load<long>(buf + 8), Is.EqualTo(99L));
            machine.CheckInvariants();
            p.Exit();
            Assert.That(machine.UsedPages, Is.Zero);
            Assert.That(coh.FreePages, Is.EqualTo((int)coh.Pgmap.PageCount));
        }
        MmRunner.Run(new MmCase(true, new Op[]
        {
            new(OpKind.Mmap, 2020228530, 1164087463, 1293174260, 1927670192, 1394035853),
            new(OpKind.Migrate, 469957537, 435647241, 1738564985, 1879997162, 475937991),
            new(OpKind.Write, 681840737, 291476447, 819529439, 1387617053, 1707861884),
            new(OpKind.Madvise, 1808445893, 45573779, 895426207, 1964161580, 1593527333),
            new(OpKind.Reclaim, 446635096, 613608662, 600981897, 1955737674, 573699303),
        }, Devices: true));
    }

    /// <summary>
    /// Migrating part of a PTE-mapped THP whose first subpage was unmapped (mremap) split the
    /// folio holding its lock but no reference: the split freed the head page, and unlocking it
    /// then raised PAGE-R03.
    /// </summary>
    [Test]
    public void MigrationSplitsThpWhoseHeadPageIsUnmapped()
    {
        MmRunner.Run(new MmCase(true, new Op[]
        {
            new(OpKind.Mmap, 12695414, 1446795339, 1104397258, 1589417111, 1930970209),
            new(OpKind.Mmap, 1501718594, 893041274, 618688871, 485608216, 1347219863),
            new(OpKind.Mmap, 1789969240, 1711263754, 364583525, 1109333808, 2002887518),
            new(OpKind.Mmap, 1955327211, 1089075029, 2113739957, 2078770443, 1501772619),
            new(OpKind.Write, 1888931511, 430468243, 2080956124, 780940489, 263169163),
            new(OpKind.Mremap, 1194556826, 523763201, 1715608038, 1992497577, 1401539097),
            new(OpKind.Mremap, 1988944564, 1641105773, 694149041, 728402323, 773153413),
            new(OpKind.Munmap, 1748760879, 337868592, 1149253980, 1359827982, 887016591),
            new(OpKind.Mmap, 1331358862, 1848685497, 834664179, 1166189367, 2019717229),
            new(OpKind.Migrate, 105067355, 1249785594, 1844527160, 1650695314, 459451541),
        }, Devices: true));
    }

    /// <summary>
    /// A freed 2 MiB device folio carved into base pages by the driver: the second page's
    /// initialisation saw the stale tail flags of the old folio and reported MIG-R10 (page in use).
    /// </summary>
    [Test]
    public void FreedDeviceFolioReusedAsBasePages()
    {
        MmRunner.Run(new MmCase(true, new Op[]
        {
            new(OpKind.Mmap, 1012151358, 1805173383, 1314553477, 440378218, 425272598),
            new(OpKind.Migrate, 1402719267, 832380412, 704352845, 117562386, 455163893),
            new(OpKind.Migrate, 350619838, 1182016700, 1522209377, 1464987356, 1937818495),
            new(OpKind.Migrate, 958874633, 1401155963, 1946644627, 1671913455, 1783792643),
        }, Devices: true));
    }

    /// <summary>
    /// A migration attempt that only unmapped a clean MADV_FREE page and put it back (the device
    /// had no memory) restored its PTE dirty, so reclaim kept the data the model (and Linux)
    /// discards. Linux: migrate_vma_collect_pmd / try_to_migrate_one copy the PTE's dirty bit into
    /// the migration entry (make_migration_entry_dirty), and remove_migration_pte sets pte_mkdirty
    /// only when the entry is dirty; MADV_FREE cleared both the PTE and the folio dirty bits, so the
    /// folio stays a clean lazy-free folio that shrink_folio_list discards. Found by the device
    /// property test (seed 17961812079025718870,8499975224397260879, case 1228; the forks and
    /// the mremap of the shrunk sequence only pick the process and the address).
    /// </summary>
    [Test]
    public void FailedMigrationKeepsALazyFreePageClean()
    {
        using (var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 }))
        {
            var coh = new TestDevice(machine, DevicePageKind.Coherent, 8UL << 20, "coh");
            var p = machine.CreateProcess("app");
            ulong buf = p.Mmap(2 * 4096, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
            p.Store(buf + 8, 0x7dL);
            p.Store(buf + 4096 + 8, 0x7eL);
            p.Madvise(buf, 2 * 4096, Advice.Free);
            Assert.That(p.Mm.EntryAt(buf).IsDirty, Is.False, "MADV_FREE cleans the PTE");
            coh.FailAllocations = 2;
            Assert.That(coh.MigrateToDevice(p, buf, 2), Is.Zero, "no device memory: both pages restored");
            Assert.That(p.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.Present));
            Assert.That(p.Mm.EntryAt(buf).IsDirty, Is.False, "the restored PTE is as clean as the one unmapped");
            // Negative case: a write after MADV_FREE dirties the PTE, and that survives the restore.
            p.Store(buf + 4096 + 8, 0x7fL);
            coh.FailAllocations = 1;
            Assert.That(coh.MigrateToDevice(p, buf + 4096, 1), Is.Zero);
            Assert.That(p.Mm.EntryAt(buf + 4096).IsDirty, Is.True, "a dirty PTE comes back dirty");
            Assert.That(machine.Reclaim(), Is.EqualTo(1), "only the clean lazy-free page is discarded");
            Assert.That(p.Load<long>(buf + 8), Is.Zero);
            Assert.That(p.Load<long>(buf + 4096 + 8), Is.EqualTo(0x7fL));
            machine.CheckInvariants();
            p.Exit();
            Assert.That(machine.UsedPages, Is.Zero);
            Assert.That(coh.FreePages, Is.EqualTo((int)coh.Pgmap.PageCount));
        }
        MmRunner.Run(new MmCase(false, new Op[]
        {
            new(OpKind.Mmap, 1743921260, 370123533, 437155202, 794559665, 1906832957),
            new(OpKind.Fork, 416310749, 103608646, 517956689, 1637828898, 1031669859),
            new(OpKind.Fork, 6237377, 1939272703, 2025270456, 2143117284, 143764577),
            new(OpKind.Store, 1352919613, 1264533919, 441972839, 2023029279, 1514994510),
            new(OpKind.Mmap, 598917337, 1674414022, 27119839, 2024430283, 1900038808),
            new(OpKind.Madvise, 1294251214, 657617936, 1036515431, 586933812, 670206814),
            new(OpKind.Mmap, 1140738562, 17764810, 1406316323, 718169771, 1927431333),
            new(OpKind.Migrate, 1632200254, 79423864, 1503455138, 2023527892, 395958437),
            new(OpKind.Mremap, 146006056, 1395277196, 744912561, 1626432333, 1977566856),
            new(OpKind.Reclaim, 1950396436, 1529045856, 700287503, 1549583879, 1181866924),
            new(OpKind.Read, 1720828651, 185982309, 732825027, 1545582067, 2095346615),
        }, Devices: true));
    }
}
