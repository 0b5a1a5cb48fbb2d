using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>mmap: resulting VMAs, bytes, protections, file mappings, hugetlb, MAP_POPULATE, and its events (reference D row 1).</summary>
public class MmapTests
{
    [Test]
    public void AnonymousPrivate_CreatesOneVmaWithTheRequestedFlags_AndReadsZero()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(3 * P + 1, RW, PrivAnon);
        var vmas = p.Mm.Vmas;
        Assert.That(vmas, Has.Count.EqualTo(1));
        Assert.That(vmas[0].Start, Is.EqualTo(a));
        Assert.That(vmas[0].End, Is.EqualTo(a + 4 * P), "length is rounded up to pages");
        Assert.That(vmas[0].Flags, Is.EqualTo(VmFlags.Read | VmFlags.Write | VmFlags.MayRead | VmFlags.MayWrite | VmFlags.MayExec));
        Assert.That(vmas[0].IsAnonymous && !vmas[0].IsShared, Is.True);
        AssertZero(p, a, 4);
        Assert.That(p.Mm.RssAnon, Is.Zero, "reads map the zero page, not fresh pages");
        machine.CheckInvariants();
    }

    [Test]
    public void AdjacentCompatibleMappings_Merge_IncompatibleOnesDoNot()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        ulong b = p.Mmap(4 * P, RW, PrivAnon, addr: a + 4 * P);
        Assert.That(b, Is.EqualTo(a + 4 * P), "the free hint is used");
        Assert.That(Layout(p), Has.Length.EqualTo(1));
        Assert.That(p.Mm.Vmas[0].Start, Is.EqualTo(a));
        Assert.That(p.Mm.Vmas[0].End, Is.EqualTo(a + 8 * P));
        ulong c = p.Mmap(4 * P, Prot.Read, PrivAnon, addr: a + 8 * P);
        Assert.That(c, Is.EqualTo(a + 8 * P));
        Assert.That(Layout(p), Has.Length.EqualTo(2), "different protection does not merge");
        machine.CheckInvariants();
    }

    [Test]
    public void Hint_OnAnOccupiedRange_IsIgnored()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        p.Store(a, 7);
        ulong b = p.Mmap(4 * P, RW, PrivAnon, addr: a);
        Assert.That(b, Is.Not.EqualTo(a));
        Assert.That(b + 4 * P <= a || b >= a + 4 * P, Is.True);
        Assert.That(p.Load<int>(a), Is.EqualTo(7));
        machine.CheckInvariants();
    }

    [Test]
    public void WriteToReadOnlyMapping_IsSegfault_ReadOfProtNone_IsSegfault_UnmappedIsSegfault()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong ro = p.Mmap(P, Prot.Read, PrivAnon);
        Assert.That(p.Load<int>(ro), Is.Zero);
        var e = Assert.Throws<SegmentationFault>(() => p.Store(ro, 1))!;
        Assert.That(e.Address, Is.EqualTo(ro));
        Assert.That(e.Write, Is.True);
        ulong none = p.Mmap(P, Prot.None, PrivAnon);
        var r = Assert.Throws<SegmentationFault>(() => p.Load<int>(none + 8))!;
        Assert.That(r.Address, Is.EqualTo(none + 8));
        Assert.That(r.Write, Is.False);
        p.Munmap(none, P);
        Assert.Throws<SegmentationFault>(() => p.Load<int>(none));
        Assert.Throws<SegmentationFault>(() => p.Store(none, 1));
        machine.CheckInvariants();
    }

    [Test]
    public void SharedFileMapping_WritesReachThePageCache_AndPwriteIsSeenThroughTheMapping()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(2 * P);
        ulong m = p.Mmap(2 * P, RW, MapFlags.Shared, f);
        p.Store(m + P + 4, 0x11223344);
        var buf = new byte[4];
        f.Pread(P + 4, buf);
        Assert.That(BitConverter.ToInt32(buf), Is.EqualTo(0x11223344));
        f.Pwrite(8, BitConverter.GetBytes(77));
        Assert.That(p.Load<int>(m + 8), Is.EqualTo(77));
        Assert.That(p.Mm.RssFile, Is.EqualTo(2));
        Assert.That(p.Mm.RssAnon, Is.Zero);
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void PrivateFileMapping_WriteIsNotVisibleInTheFile_ButFileDataIsReadable()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(2 * P);
        f.Pwrite(P, BitConverter.GetBytes(5));
        ulong m = p.Mmap(2 * P, RW, MapFlags.Private, f);
        Assert.That(p.Load<int>(m + P), Is.EqualTo(5));
        p.Store(m + P, 6);
        Assert.That(p.Load<int>(m + P), Is.EqualTo(6));
        var buf = new byte[4];
        f.Pread(P, buf);
        Assert.That(BitConverter.ToInt32(buf), Is.EqualTo(5), "a private write is a COW copy");
        Assert.That(p.Mm.RssAnon, Is.EqualTo(1));
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void FileMapping_WithOffset_MapsThatPartOfTheFile()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(4 * P);
        f.Pwrite(2 * P, BitConverter.GetBytes(42));
        ulong m = p.Mmap(2 * P, Prot.Read, MapFlags.Shared, f, offset: 2 * P);
        Assert.That(p.Load<int>(m), Is.EqualTo(42));
        Assert.That(p.Mm.Vmas[0].PgOff, Is.EqualTo(2UL));
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void FileMapping_BeyondEof_IsBusError_WithinTheLastPageIsFine()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(P + 100);
        ulong m = p.Mmap(4 * P, RW, MapFlags.Shared, f);
        p.Store(m + P + 200, 3);   // inside the page holding EOF
        Assert.That(p.Load<int>(m + P + 200), Is.EqualTo(3));
        var e = Assert.Throws<BusError>(() => p.Load<int>(m + 2 * P))!;
        Assert.That(e.Address, Is.EqualTo(m + 2 * P));
        Assert.Throws<BusError>(() => p.Store(m + 3 * P, 1));
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void SharedAnonymous_IsSharedWithTheForkChild()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong m = p.Mmap(2 * P, RW, SharedAnon);
        p.Store(m, 1);
        var c = p.Fork();
        c.Store(m, 2);
        p.Store(m + P, 3);
        Assert.That(p.Load<int>(m), Is.EqualTo(2));
        Assert.That(c.Load<int>(m + P), Is.EqualTo(3));
        Assert.That(p.Mm.Vmas[0].IsShared, Is.True);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void Populate_FaultsEveryPageIn_WritableForPrivateWritable()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(8 * P, RW, PrivAnon | MapFlags.Populate);
        Assert.That(p.Mm.RssAnon, Is.EqualTo(8));
        for (ulong i = 0; i < 8; i++)
        {
            var e = p.Mm.EntryAt(a + i * P);
            Assert.That(e.Kind, Is.EqualTo(PteKind.Present));
            Assert.That(e.IsWritable, Is.True);
        }
        ulong r = p.Mmap(4 * P, Prot.Read, PrivAnon | MapFlags.Populate);
        Assert.That(p.Mm.EntryAt(r).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(p.Mm.EntryAt(r).IsWritable, Is.False, "a read-only mapping is populated with the zero page");
        Assert.That(p.Mm.RssAnon, Is.EqualTo(8));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void Populate_SharedFile_MapsThePageCache()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(3 * P);
        p.Mmap(3 * P, RW, MapFlags.Shared | MapFlags.Populate, f);
        Assert.That(p.Mm.RssFile, Is.EqualTo(3));
        Assert.That(f.CachedFolios, Is.EqualTo(3));
        machine.CheckInvariants();
        ExitAll(machine, f);
    }

    [Test]
    public void HugeTlb_MapsTwoMiBPages_FromThePool()
    {
        using var machine = NewMachine(hugeTlbPages: 2);
        var p = machine.CreateProcess("app");
        ulong h = p.Mmap(Huge + 1, RW, PrivAnon | MapFlags.HugeTlb);
        Assert.That(h % Huge, Is.Zero);
        Assert.That(p.Mm.Vmas[0].End - h, Is.EqualTo(2 * Huge), "length rounds up to 2 MiB");
        Assert.That(p.Mm.Vmas[0].IsHugeTlb, Is.True);
        p.Store(h + Huge + 8, 9);
        Assert.That(p.Mm.EntryAt(h + Huge).IsHuge, Is.True);
        Assert.That(machine.HugeTlbFreePages, Is.EqualTo(1));
        Assert.That(p.Load<int>(h + Huge + 8), Is.EqualTo(9));
        p.Munmap(h, 2 * Huge);
        Assert.That(machine.HugeTlbFreePages, Is.EqualTo(2));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    [Test]
    public void Fixed_OverAnExistingMapping_ReplacesItAndItsData()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        ulong b = p.Mmap(2 * P, Prot.Read, PrivAnon | MapFlags.Fixed, addr: a + P);
        Assert.That(b, Is.EqualTo(a + P));
        Assert.That(Layout(p).Select(v => (v.Start, v.End)), Is.EqualTo(new[] { (a, a + P), (a + P, a + 3 * P), (a + 3 * P, a + 4 * P) }));
        Assert.That(p.Load<int>(a), Is.EqualTo(1000));
        Assert.That(p.Load<int>(a + P), Is.Zero);
        Assert.That(p.Load<int>(a + 3 * P), Is.EqualTo(1003));
        Assert.That(p.Mm.RssAnon, Is.EqualTo(2));
        machine.CheckInvariants();
    }

    // Reference D row 1: mmap(MAP_FIXED) over an existing mapping → UNMAP over the whole replaced region.
    [Test]
    public void Event_FixedOverExisting_RaisesOneUnmapOverTheRange()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mmap(2 * P, RW, PrivAnon | MapFlags.Fixed, addr: a + P);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Unmap, a + P, a + 3 * P) }));
        rec.Clear();
        p.Mmap(2 * P, RW, PrivAnon | MapFlags.Fixed, addr: a + 8 * P);
        Assert.That(rec.Events, Is.Empty, "MAP_FIXED onto a free range unmaps nothing");
        machine.CheckInvariants();
    }

    // Reference D row 1: MAP_FIXED spanning two VMAs and a hole → one UNMAP over the whole request.
    [Test]
    public void Event_FixedOverTwoVmas_RaisesOneUnmapSpanningThem()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(6 * P, RW, PrivAnon);
        p.Mprotect(a + 2 * P, P, Prot.Read);
        Fill(p, a, 2);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Mmap(4 * P, RW, PrivAnon | MapFlags.Fixed, addr: a + P);
        Assert.That(rec.Events, Is.EqualTo(new[] { Ev(NotifyEvent.Unmap, a + P, a + 5 * P) }));
        machine.CheckInvariants();
    }

    // Reference D: plain mmap (no replacement) changes no existing PTE: no event.
    [Test]
    public void Event_PlainMmapAndPopulate_RaiseNothing()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        using var rec = NotifierRecorder.Attach(p.Mm);
        ulong a = p.Mmap(4 * P, RW, PrivAnon | MapFlags.Populate);
        Assert.That(p.Load<int>(a), Is.Zero);
        Assert.That(rec.Events, Is.Empty);
        machine.CheckInvariants();
    }
}
