using Hmm.Runtime;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Dmirror;

/// <summary>Every page kind of reference E.5 as HMM_DMIRROR_SNAPSHOT reports it.</summary>
public class SnapshotTests : DmirrorTestBase
{
    [Test]
    public void SystemPageKinds()
    {
        var dev = DmirrorDevice.Create(Machine, 0);
        ulong buf = P.Mmap(4 * PageSize, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        _ = P.Load<int>(buf + PageSize);                 // zero page
        P.Store(buf + (2 * PageSize), 1);                // written
        P.Store(buf + (3 * PageSize), 1);
        P.Mprotect(buf + (3 * PageSize), PageSize, Prot.Read);   // read-only
        ulong none = P.Mmap(PageSize, Prot.None, MapFlags.Private | MapFlags.Anonymous);
        using var m = dev.Open(P);
        Assert.That(Snap(m, buf, 4), Is.EqualTo(new byte[] { DmirrorProt.None, DmirrorProt.Zero | DmirrorProt.Read, DmirrorProt.Write, DmirrorProt.Read }));
        Assert.That(Snap(m, none, 1)[0], Is.EqualTo(DmirrorProt.Error));
        Assert.That(Snap(m, 0x10_0000_0000, 2), Is.All.EqualTo(DmirrorProt.Error));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void HugePagesCarryThePmdBit()
    {
        var dev = DmirrorDevice.Create(Machine, 0);
        ulong thp = P.Mmap(4UL << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        P.Madvise(thp, 4UL << 20, Advice.HugePage);
        P.Store(thp, 1);
        ulong huge = P.Mmap(2UL << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.HugeTlb);
        P.Store(huge + 100, 1);
        using var m = dev.Open(P);
        Assert.That(P.Mm.EntryAt(thp).IsHuge, Is.True);
        Assert.That(Snap(m, thp, 512), Is.All.EqualTo(DmirrorProt.Write | DmirrorProt.Pmd));
        Assert.That(Snap(m, huge, 512), Is.All.EqualTo(DmirrorProt.Write | DmirrorProt.Pmd));
        m.Close();
        Machine.CheckInvariants();
    }

    [Test]
    public void DeviceMemoryLocalAndRemote()
    {
        var d0 = DmirrorDevice.Create(Machine, 0);
        var d1 = DmirrorDevice.Create(Machine, 1);
        var d2 = DmirrorDevice.Create(Machine, 2);
        var d3 = DmirrorDevice.Create(Machine, 3);
        ulong buf = Filled(4);
        using var m0 = d0.Open(P);
        using var m1 = d1.Open(P);
        using var m2 = d2.Open(P);
        using var m3 = d3.Open(P);
        Assert.That(m0.MigrateToDevice(buf, 2, Mirror(2), out _), Is.EqualTo(Errno.Ok));
        Assert.That(m2.MigrateToDevice(buf + (2 * PageSize), 2, Mirror(2), out _), Is.EqualTo(Errno.Ok));
        const byte w = DmirrorProt.Write;
        Assert.That(Snap(m0, buf, 4), Is.EqualTo(new byte[] { DmirrorProt.DevPrivateLocal | w, DmirrorProt.DevPrivateLocal | w, DmirrorProt.DevCoherentRemote | w, DmirrorProt.DevCoherentRemote | w }));
        // Another device's private pages are not VALID without faulting: NONE, never _REMOTE.
        Assert.That(Snap(m1, buf, 4), Is.EqualTo(new byte[] { DmirrorProt.None, DmirrorProt.None, DmirrorProt.DevCoherentRemote | w, DmirrorProt.DevCoherentRemote | w }));
        Assert.That(Snap(m2, buf + (2 * PageSize), 2), Is.All.EqualTo(DmirrorProt.DevCoherentLocal | w));
        Assert.That(Snap(m3, buf + (2 * PageSize), 2), Is.All.EqualTo(DmirrorProt.DevCoherentRemote | w));
        Machine.CheckInvariants();
        m0.Close(); m1.Close(); m2.Close(); m3.Close();
        Assert.That(CpuRead(buf, 4), Is.EqualTo(Pattern(4, 1)));
        Machine.CheckInvariants();
    }
}
