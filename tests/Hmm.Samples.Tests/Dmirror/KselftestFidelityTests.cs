using Hmm.Runtime;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Dmirror;

/// <summary>
/// Scenarios of the kernel's tools/testing/selftests/mm/hmm-tests.c that once diverged from Linux
/// (issue 9), each named after the kernel behaviour it pins, for both device memory kinds
/// (minors 0/1 private, 2/3 coherent).
/// </summary>
public class KselftestFidelityTests : DmirrorTestBase
{
    private const ulong TwoMeg = 2UL << 20;

    /// <summary>
    /// hmm-tests "mixedmap": vm_insert_page builds the PTE from vma->vm_page_prot, and for a
    /// MAP_PRIVATE mapping with VM_WRITE that protection is the copy-on-write one (PAGE_COPY, not
    /// writable). Another device's SNAPSHOT therefore reports READ; only a CPU write fault makes a
    /// private, writable anonymous copy — and the device file's own page stays untouched.
    /// </summary>
    [Test]
    public void VmInsertPageInPrivateWritableMappingMapsCopyOnWrite([Values(0, 2)] int minor)
    {
        var dev0 = DmirrorDevice.Create(Machine, minor);
        var dev1 = DmirrorDevice.Create(Machine, minor + 1);
        ulong map = dev0.MmapDeviceFile(P, PageSize, Prot.Read | Prot.Write, MapFlags.Private);
        using var m = dev1.Open(P);
        Assert.That(Snap(m, map, 1), Is.EqualTo(new[] { DmirrorProt.Read }));
        long used = Machine.UsedPages;
        P.Store(map + 8, 0x5A5A);   // do_wp_page → wp_page_copy: a private anonymous copy
        Assert.That(P.Load<int>(map + 8), Is.EqualTo(0x5A5A));
        // The copy replaced the driver's page, which only the mapping still held: it is freed.
        Assert.That(Machine.UsedPages, Is.EqualTo(used));
        Assert.That(Snap(m, map, 1), Is.EqualTo(new[] { DmirrorProt.Write }));
        var child = P.Fork();   // the copy is anonymous and COW-shared with the child
        Assert.That(child.Load<int>(map + 8), Is.EqualTo(0x5A5A));
        child.Exit();
        P.Munmap(map, PageSize);
        Assert.That(Machine.UsedPages, Is.EqualTo(used - 1));   // the anonymous copy is gone too
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>The shared counterpart: VM_SHARED | VM_WRITE gives PAGE_SHARED, so the inserted page is writable at once.</summary>
    [Test]
    public void VmInsertPageInSharedWritableMappingMapsWritable([Values(0, 2)] int minor)
    {
        var dev0 = DmirrorDevice.Create(Machine, minor);
        var dev1 = DmirrorDevice.Create(Machine, minor + 1);
        ulong map = dev0.MmapDeviceFile(P, PageSize, Prot.Read | Prot.Write, MapFlags.Shared);
        using var m = dev1.Open(P);
        Assert.That(Snap(m, map, 1), Is.EqualTo(new[] { DmirrorProt.Write }));
        long used = Machine.UsedPages;
        P.Store(map + 8, 7);
        Assert.That(Machine.UsedPages, Is.EqualTo(used));   // no copy: the driver's page itself
        ulong ro = dev0.MmapDeviceFile(P, PageSize, Prot.Read, MapFlags.Shared);
        Assert.That(Snap(m, ro, 1), Is.EqualTo(new[] { DmirrorProt.Read }));
        Assert.Throws<SegmentationFault>(() => P.Store(ro, 1));
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// hmm-tests "migrate_anon_huge_zero_err": migrate_vma_collect treats a huge zero PMD as a
    /// (compound) hole; when the driver's 2 MiB allocation fails and it hands back 512 base-page
    /// destinations, migrate_vma_pages inserts every base page of the hole. Setup returns 0,
    /// cpages is 512, and the CPU reads zeros back.
    /// </summary>
    [Test]
    public void HugeZeroPmdMigratesAsHoleWhenDriverFallsBackToBasePages([Values(0, 2)] int minor)
    {
        var dev = DmirrorDevice.Create(Machine, minor);
        using var m = dev.Open(P);
        for (int round = 0; round < 2; round++)
        {
            ulong old = P.Mmap(2 * TwoMeg, Prot.Read, MapFlags.Private | MapFlags.Anonymous);
            ulong map = (old + TwoMeg - 1) & ~(TwoMeg - 1);
            P.Madvise(map, TwoMeg, Advice.HugePage);
            Assert.That(P.Load<int>(map), Is.Zero);   // a huge zero PMD
            Assert.That(Snap(m, map, 1), Is.EqualTo(new[] { (byte)(DmirrorProt.Zero | DmirrorProt.Read | DmirrorProt.Pmd) }));
            Assert.That(m.SetFlags(DmirrorFlags.FailAlloc), Is.EqualTo(Errno.Ok));
            var mirror = Mirror(512);
            Array.Fill(mirror, (byte)0xFF);
            Assert.That(m.MigrateToDevice(map, 512, mirror, out var c), Is.EqualTo(Errno.Ok));
            Assert.That(c.Cpages, Is.EqualTo(512));
            Assert.That(mirror, Is.All.EqualTo(0));
            Assert.That(Snap(m, map, 512), Is.All.EqualTo(Local(minor) | DmirrorProt.Read));   // base pages, read-only VMA
            if (round == 0) Assert.That(P.Load<int>(map + (2048 * 4)), Is.Zero);
            else Assert.That(CpuRead(map, 512), Is.All.EqualTo(0));
            P.Munmap(old, 2 * TwoMeg);
        }
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// hmm-tests "migrate_anon_huge_err": MIGRATE_TO_SYS with the system allocation failing
    /// returns 0 — a 2 MiB device folio falls back to 512 single system pages (migrate_vma_pages
    /// splits the unmapped device folio), and a base device page whose allocation fails simply
    /// stays on the device, because dmirror_migrate_to_system ignores the result of
    /// dmirror_devmem_fault_alloc_and_copy. Element 2048 then reads 2048 (a CPU fault brings any
    /// page left behind). The coherent device has no 2 MiB folios, so it exercises the base-page case.
    /// </summary>
    [Test]
    public void MigrateToSystemSucceedsWhenSystemAllocationFails([Values(0, 2)] int minor)
    {
        var dev = DmirrorDevice.Create(Machine, minor);
        using var m = dev.Open(P);
        // First half: the device allocation fails, the THP goes over as 512 base pages.
        ulong old = P.Mmap(2 * TwoMeg, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        ulong map = (old + TwoMeg - 1) & ~(TwoMeg - 1);
        P.Madvise(map, TwoMeg, Advice.HugePage);
        var ints = Ints();
        P.Write(map, ints);
        Assert.That(m.SetFlags(DmirrorFlags.FailAlloc), Is.EqualTo(Errno.Ok));
        var mirror = Mirror(512);
        Assert.That(m.MigrateToDevice(map, 512, mirror, out var c), Is.EqualTo(Errno.Ok));
        Assert.That(c.Cpages, Is.EqualTo(512));
        Assert.That(mirror, Is.EqualTo(ints));
        Assert.That(P.Load<int>(map + (2048 * 4)), Is.EqualTo(2048));
        P.Munmap(old, 2 * TwoMeg);

        // Second half: a whole device THP, then the system allocation fails.
        old = P.Mmap(2 * TwoMeg, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        map = (old + TwoMeg - 1) & ~(TwoMeg - 1);
        P.Madvise(map, TwoMeg, Advice.HugePage);
        P.Write(map, ints);
        Assert.That(m.MigrateToDevice(map, 512, Mirror(512), out c), Is.EqualTo(Errno.Ok));
        Assert.That(c.Cpages, Is.EqualTo(512));
        // A private device maps the device THP with one PMD; the coherent device has no 2 MiB folios (one SPM chunk of base pages).
        Assert.That(Snap(m, map, 1), Is.EqualTo(new[] { (byte)(Local(minor) | DmirrorProt.Write | (minor < 2 ? DmirrorProt.Pmd : 0)) }));
        Assert.That(m.SetFlags(DmirrorFlags.FailAlloc), Is.EqualTo(Errno.Ok));
        Assert.That(m.MigrateToSystem(map, 512, out c), Is.EqualTo(Errno.Ok));
        // Private: the 2 MiB device folio came back as 512 base pages. Coherent (base pages): the
        // failed first page ended the copy, so nothing of the piece moved — the CPU reads it in place.
        Assert.That(c.Cpages, Is.EqualTo(minor < 2 ? 512 : 0));
        Assert.That(P.Load<int>(map + (2048 * 4)), Is.EqualTo(2048));
        Assert.That(CpuRead(map, 512), Is.EqualTo(ints));
        P.Munmap(old, 2 * TwoMeg);
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>ptr[i] = i over 2 MiB of ints, as the selftest fills its buffers.</summary>
    private static byte[] Ints()
    {
        var b = new byte[(int)TwoMeg];
        for (int i = 0; i < b.Length / 4; i++) BitConverter.TryWriteBytes(b.AsSpan(i * 4), i);
        return b;
    }
}
