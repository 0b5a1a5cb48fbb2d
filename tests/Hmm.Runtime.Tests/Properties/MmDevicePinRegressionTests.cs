using NUnit.Framework;

namespace Hmm.Runtime.Tests.Properties;

/// <summary>Shrunk sequences of the device property test that exposed mistakes in its model.</summary>
public class MmDevicePinRegressionTests
{
    /// <summary>
    /// A read-only pin of a MAP_PRIVATE file page pins the page-cache page; GUP unshares only
    /// anonymous pages, so a later write pin COWs the mapping to a new anonymous page while the
    /// first pin keeps the page-cache page. The model once called that "a pinned page moved".
    /// </summary>
    [Test]
    public void ReadPinOfPrivateFilePageThenWritePinCopiesOnWrite()
    {
        MmRunner.Run(new MmCase(true, new Op[]
        {
            new(OpKind.Mmap, 788335996, 678173537, 1628700396, 1441388426, 555178064),
            new(OpKind.Exclusive, 879884242, 1031671683, 1761706199, 970777662, 1733874063),
            new(OpKind.Migrate, 23246914, 1957391682, 321375796, 1262903479, 566670905),
            new(OpKind.Migrate, 47580585, 1678947945, 2020416810, 598248090, 1875646665),
            new(OpKind.Store, 1610339232, 1384770219, 907666950, 2140697875, 280595393),
            new(OpKind.Pin, 188553710, 1056372031, 1716781309, 1767696020, 1339501807),
            new(OpKind.Migrate, 778637085, 2108604756, 1091095734, 1488615044, 1876161469),
            new(OpKind.Migrate, 306060960, 734140056, 443768554, 203041467, 1118565344),
            new(OpKind.Pin, 301987406, 2061870905, 295121498, 2106868784, 1341697478),
        }, Devices: true));
    }

    /// <summary>
    /// fork copies a pinned anonymous page for the child at once (page_needs_cow_for_dma); inside
    /// a PROT_NONE range (a THP split by mprotect) the copy was mapped accessible, so the child
    /// could read memory it must not. The copy's entry now comes from the VMA's protection.
    /// </summary>
    [Test]
    public void PinnedPageCopiedAtForkKeepsProtNone()
    {
        using (var machine = new Hmm.Runtime.Mm.Machine(new Hmm.Runtime.Mm.MachineOptions { SystemMemory = 64L << 20 }))
        {
            var p = machine.CreateProcess("app");
            ulong buf = p.Mmap(4096 * 4, Hmm.Runtime.Mm.Prot.Read | Hmm.Runtime.Mm.Prot.Write, Hmm.Runtime.Mm.MapFlags.Private | Hmm.Runtime.Mm.MapFlags.Anonymous);
            p.Store(buf + 4096, 42);
            var pin = p.PinUserPages(buf + 4096, 1, write: true, longTerm: true);
            p.Mprotect(buf, 4096 * 4, Hmm.Runtime.Mm.Prot.None);
            var child = p.Fork();
            Assert.Throws<SegmentationFault>(() => child.Load<int>(buf + 4096));
            child.Mprotect(buf, 4096 * 4, Hmm.Runtime.Mm.Prot.Read);
            Assert.That(child.Load<int>(buf + 4096), Is.EqualTo(42));
            pin.Dispose();
            machine.CheckInvariants();
            child.Exit();
            p.Exit();
            Assert.That(machine.UsedPages, Is.Zero);
        }
        MmRunner.Run(new MmCase(true, new Op[]
        {
            new(OpKind.Mmap, 1605499807, 1106705051, 1940653204, 1169479043, 951440090),
            new(OpKind.Pin, 1390494324, 574106989, 1155351954, 1979671488, 418400138),
            new(OpKind.Mmap, 553350367, 920626887, 187758044, 1341120853, 650653909),
            new(OpKind.Exclusive, 1822312745, 562883210, 355430425, 2079389043, 1061711998),
            new(OpKind.Write, 2084955343, 1595762233, 1440991078, 839437693, 362420132),
            new(OpKind.Migrate, 233863484, 42586793, 466301230, 1718142146, 205061713),
            new(OpKind.Mremap, 513982417, 912462367, 1648248948, 269081144, 1380672762),
            new(OpKind.Exclusive, 1980684504, 491042065, 1062666541, 1076105393, 973538650),
            new(OpKind.Migrate, 1771662454, 1661824374, 2101303904, 110511963, 1452036950),
            new(OpKind.Mprotect, 1497612860, 615438999, 1139217302, 1265102422, 1781704511),
            new(OpKind.Migrate, 1125668082, 1150537186, 858227231, 731277607, 1433004305),
            new(OpKind.Pin, 1744320337, 827012871, 982900824, 910828204, 908991532),
            new(OpKind.Fork, 1292507712, 1698923979, 1009403796, 1225176510, 1218604150),
            new(OpKind.Load, 2139271769, 285124080, 1747887105, 438084271, 70413992),
        }, Devices: true));
    }

    /// <summary>
    /// gup_must_unshare: a read-only pin of an anonymous page shared after fork must first make it
    /// exclusive — also inside a MAP_PRIVATE file mapping, where the COW copy is anonymous. The pin
    /// code only did so for private anonymous VMAs, so a later write moved the process away from
    /// its pinned page.
    /// </summary>
    [Test]
    public void ReadPinUnsharesAnAnonymousPageInAPrivateFileMapping()
    {
        using (var machine = new Hmm.Runtime.Mm.Machine(new Hmm.Runtime.Mm.MachineOptions { SystemMemory = 64L << 20 }))
        {
            var p = machine.CreateProcess("app");
            var f = machine.CreateFile(4 * 4096);
            ulong m = p.Mmap(4 * 4096, Hmm.Runtime.Mm.Prot.Read | Hmm.Runtime.Mm.Prot.Write, Hmm.Runtime.Mm.MapFlags.Private, f);
            p.Store(m + 4096, 7L);                              // COW: an anonymous copy of the file page
            var child = p.Fork();                               // now shared with the child
            using (var pin = p.PinUserPages(m + 4096, 1, write: false, longTerm: true))
            {
                ulong pinned = pin.Pfns[0];
                Assert.That(p.Mm.EntryAt(m + 4096).Pfn, Is.EqualTo(pinned));
                p.Store(m + 4096, 8L);
                Assert.That(p.Mm.EntryAt(m + 4096).Pfn, Is.EqualTo(pinned), "the pinned page stays the process's page");
                Assert.That(child.Load<long>(m + 4096), Is.EqualTo(7L));
            }
            machine.CheckInvariants();
            child.Exit();
            p.Exit();
            f.Dispose();
            Assert.That(machine.UsedPages, Is.Zero);
        }
        MmRunner.Run(new MmCase(false, new Op[]
        {
            new(OpKind.Mmap, 763114586, 1442199637, 1327850617, 1395538827, 1797646400),
            new(OpKind.Store, 2105503074, 1914807643, 218554810, 2022077490, 203358919),
            new(OpKind.Fork, 764856716, 298220003, 1347509493, 653876957, 203762737),
            new(OpKind.Pin, 966415296, 592196771, 847988159, 2099093766, 334402521),
            new(OpKind.Pin, 421635626, 712756336, 1968881955, 1757893549, 835079194),
        }, Devices: true));
    }

    /// <summary>
    /// A page pinned for write after MADV_FREE must survive reclaim: GUP with FOLL_WRITE marks the
    /// folio dirty, and reclaim keeps a lazy-free folio that holds references beyond its mapping.
    /// Reclaim used to drop it and the process read zeros.
    /// </summary>
    [Test]
    public void WritePinAfterMadvFreeSurvivesReclaim()
    {
        using (var machine = new Hmm.Runtime.Mm.Machine(new Hmm.Runtime.Mm.MachineOptions { SystemMemory = 64L << 20 }))
        {
            var p = machine.CreateProcess("app");
            ulong a = p.Mmap(2 * 4096, Hmm.Runtime.Mm.Prot.Read | Hmm.Runtime.Mm.Prot.Write, Hmm.Runtime.Mm.MapFlags.Private | Hmm.Runtime.Mm.MapFlags.Anonymous);
            p.Store(a, 0xFBUL);
            p.Store(a + 4096, 0xFCUL);
            p.Madvise(a, 2 * 4096, Hmm.Runtime.Mm.Advice.Free);
            using (var pin = p.PinUserPages(a, 1, write: true, longTerm: true))
            {
                Assert.That(machine.Reclaim(), Is.EqualTo(1), "only the unpinned lazy-free page goes");
                Assert.That(p.Load<ulong>(a), Is.EqualTo(0xFBUL));
                Assert.That(p.Load<ulong>(a + 4096), Is.Zero);
            }
            machine.CheckInvariants();
            p.Exit();
            Assert.That(machine.UsedPages, Is.Zero);
        }
        MmRunner.Run(new MmCase(false, new Op[]
        {
            new(OpKind.Mmap, 299963557, 102906672, 1955681467, 1608190163, 822093447),
            new(OpKind.Mmap, 366567747, 1941101464, 1934640236, 1134337068, 1086206151),
            new(OpKind.Fork, 1650424740, 146091402, 1927244630, 1903004801, 597273634),
            new(OpKind.Mmap, 256756119, 2112093947, 99842569, 1975338223, 1379759008),
            new(OpKind.Write, 365272853, 399690834, 1563765879, 771281372, 1253621274),
            new(OpKind.Exclusive, 285125964, 7013998, 1887161167, 2125604546, 926695369),
            new(OpKind.Mremap, 150828827, 259932637, 470489139, 1144373564, 796187293),
            new(OpKind.Pin, 1397809653, 2101483071, 398935920, 460898457, 516918254),
            new(OpKind.Write, 1842125172, 177544984, 412968775, 956476566, 1671171112),
            new(OpKind.Madvise, 1243899679, 598911742, 673224476, 500860488, 1746535453),
            new(OpKind.Store, 865228917, 172613776, 659910231, 1805168582, 409121828),
            new(OpKind.Pin, 1567119107, 348018286, 1856899387, 208911546, 1069860556),
            new(OpKind.Reclaim, 1286867515, 1232304560, 1876816808, 2054670087, 833997242),
        }, Devices: true));
    }
    /// <summary>
    /// Issue 9, cause 5 (seed 11654305174182864590,11123402006173531047, case 2117 of 5000, shrunk
    /// to 7 operations): a pinned anonymous page is exclusive to its mm, so a later
    /// pin_user_pages never replaces it.
    /// </summary>
    [Test]
    public void LaterPinNeverReplacesAPinnedAnonymousPage()
    {
        MmRunner.Run(new MmCase(false, new Op[]
        {
            new(OpKind.Fork, 1681567859, 1876600192, 2113627382, 1145695379, 204931199),
            new(OpKind.Mmap, 1960578130, 1395884051, 1012050784, 1930908171, 1905026361),
            new(OpKind.Migrate, 1939697040, 1081717677, 1622777113, 1646685994, 301198324),
            new(OpKind.Fork, 1449884316, 448432898, 1905111747, 207425712, 516299986),
            new(OpKind.Pin, 4496838, 131646742, 1793663452, 58760590, 1646106099),
            new(OpKind.Pin, 175446522, 1771256391, 813443920, 1490615571, 323701221),
            new(OpKind.Pin, 286661721, 1281673946, 1852170411, 1884320987, 783734844),
        }, Devices: true));
    }
}
