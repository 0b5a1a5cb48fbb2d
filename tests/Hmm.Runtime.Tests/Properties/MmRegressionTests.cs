using Hmm.Runtime.Mm;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Properties;

/// <summary>Shrunk sequences the property test found, kept as plain deterministic tests.</summary>
public class MmRegressionTests
{
    /// <summary>MAP_POPULATE of a PROT_NONE mapping installed accessible PTEs: a later load succeeded instead of SIGSEGV.</summary>
    [Test]
    public void PopulatedProtNoneMappingStillFaults()
    {
        MmRunner.Run(new MmCase(false, new Op[]
        {
            new(OpKind.Mmap, 1938721323, 1425010290, 828623995, 1294672154, 1051056569),
            new(OpKind.Read, 1182032958, 1969602580, 306798342, 1431944382, 280172197),
        }));

        using var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
        var p = machine.CreateProcess("app");
        ulong buf = p.Mmap(16 * 4096, Prot.None, MapFlags.Private | MapFlags.Anonymous | MapFlags.Populate);
        Assert.Throws<SegmentationFault>(() => p.Load<byte>(buf + 5000));
        Assert.Throws<SegmentationFault>(() => p.Store<byte>(buf, 1));
        p.Mprotect(buf, 16 * 4096, Prot.Read | Prot.Write);
        Assert.That(p.Load<byte>(buf + 5000), Is.Zero);
        machine.CheckInvariants();
        p.Exit();
        Assert.That(machine.UsedPages, Is.Zero);
    }

    /// <summary>
    /// MADV_FREE in a fork child on a THP the parent still maps with a PMD: the split child PTEs had
    /// mapcount 1, so the shared pages were marked lazy-free and reclaim dropped the child's data.
    /// Linux skips folios mapped elsewhere (folio_likely_mapped_shared counts the entire mapcount).
    /// </summary>
    [Test]
    public void MadvFreeSkipsThpStillPmdMappedByForkSibling()
    {
        using (var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 }))
        {
            var p = machine.CreateProcess("app");
            ulong buf = p.Mmap(2 << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
            p.Madvise(buf, 2 << 20, Advice.HugePage);
            p.Store(buf + 5000, 0x1234567890UL);
            Assert.That(p.Mm.EntryAt(buf).IsHuge, Is.True);
            var child = p.Fork();
            child.Madvise(buf, 2 << 20, Advice.Free);
            machine.Reclaim();
            Assert.That(child.Load<ulong>(buf + 5000), Is.EqualTo(0x1234567890UL));
            Assert.That(p.Load<ulong>(buf + 5000), Is.EqualTo(0x1234567890UL));
            machine.CheckInvariants();
            child.Exit();
            p.Exit();
            Assert.That(machine.UsedPages, Is.Zero);
        }
        MmRunner.Run(new MmCase(true, new Op[]
        {
            new(OpKind.Mmap, 1093166477, 2038799100, 671791007, 1021075353, 1521182773),
            new(OpKind.Mmap, 457096559, 2054552852, 1887127948, 411381407, 1742410271),
            new(OpKind.Mmap, 942377342, 1973358582, 1753412917, 2038840690, 490082030),
            new(OpKind.Write, 1405450146, 974678224, 421904106, 750072505, 354589519),
            new(OpKind.Fork, 2105381799, 1581750078, 1659329649, 867967982, 1273199293),
            new(OpKind.Munmap, 1988351835, 537140634, 1238927901, 1442440456, 402470052),
            new(OpKind.Madvise, 423736925, 537157946, 675118800, 408782916, 1110727824),
            new(OpKind.Reclaim, 1048739227, 1637701900, 2146003872, 1249504938, 287116378)
        }));
    }

    /// <summary>
    /// Splitting a PROT_NONE huge-zero-page PMD (here by mremap isolating part of the VMA) built
    /// ordinary read-only zero-page PTEs, dropping the protnone bit: a load then succeeded instead of SIGSEGV.
    /// </summary>
    [Test]
    public void SplitOfProtNoneHugeZeroPmdKeepsProtNone()
    {
        using (var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 }))
        {
            var p = machine.CreateProcess("app");
            ulong buf = p.Mmap(2 << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
            p.Madvise(buf, 2 << 20, Advice.HugePage);
            Assert.That(p.Load<int>(buf + 100), Is.Zero);   // maps the huge zero page
            p.Mprotect(buf, 2 << 20, Prot.None);
            p.Munmap(buf + (1 << 20), 4096);                // splits the PMD
            Assert.Throws<SegmentationFault>(() => p.Load<int>(buf + 100));
            machine.CheckInvariants();
            p.Exit();
            Assert.That(machine.UsedPages, Is.Zero);
        }
        MmRunner.Run(new MmCase(true, new Op[]
        {
            new(OpKind.Mmap, 1895028191, 1788604604, 717564866, 1579611730, 1444605527),
            new(OpKind.Mmap, 832460025, 1182369940, 24466387, 1730704472, 1282115240),
            new(OpKind.Load, 2074944483, 263909879, 643201678, 1240015643, 674087220),
            new(OpKind.Mprotect, 444321681, 990646777, 601733802, 335192144, 2067252831),
            new(OpKind.Mmap, 2022676895, 1017315135, 1312807133, 1868583136, 1230363029),
            new(OpKind.Mremap, 1370262259, 620339747, 1535728052, 170866949, 190529272),
            new(OpKind.Read, 1216799103, 1114264984, 581173303, 895225957, 1714619416),
        }));
    }

    /// <summary>
    /// A fork child writing to a THP its parent still maps with a PMD: the child's split PTEs found
    /// the tail pages still AnonExclusive (fork cleared the head only) with mapcount 1 and reused
    /// them in place, so the child's store landed in the parent's memory.
    /// </summary>
    [Test]
    public void ChildWriteToForkSharedThpDoesNotReachParent()
    {
        using (var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 }))
        {
            var p = machine.CreateProcess("app");
            ulong buf = p.Mmap(2 << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
            p.Madvise(buf, 2 << 20, Advice.HugePage);
            p.Store(buf + 0x5000, 1);
            Assert.That(p.Mm.EntryAt(buf).IsHuge, Is.True);
            var child = p.Fork();
            child.Store(buf + 0x5000, 2);
            Assert.That(p.Load<int>(buf + 0x5000), Is.EqualTo(1));
            Assert.That(child.Load<int>(buf + 0x5000), Is.EqualTo(2));
            p.Store(buf + 0x6000, 3);
            Assert.That(child.Load<int>(buf + 0x6000), Is.Zero);
            machine.CheckInvariants();
            child.Exit();
            p.Exit();
            Assert.That(machine.UsedPages, Is.Zero);
        }
        MmRunner.Run(new MmCase(true, new Op[]
        {
            new(OpKind.Mmap, 1632483360, 48347204, 1522860779, 1292675077, 1569071819),
            new(OpKind.Write, 716419660, 1483612963, 826300709, 1504538886, 1911806279),
            new(OpKind.Fork, 1747642413, 1371353022, 1128797876, 879828078, 1216379139),
            new(OpKind.Store, 1580713007, 1585867211, 1666498703, 1927335466, 1758595462),
        }));
    }
}
