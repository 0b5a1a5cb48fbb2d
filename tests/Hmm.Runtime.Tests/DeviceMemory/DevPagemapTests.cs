using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.DeviceMemory;

/// <summary>dev_pagemap hotplug, device page lifecycle and early removal (reference A.8, A.11, B.6 "Device-side eviction", C MIG-R10).</summary>
public class DevPagemapTests
{
    private sealed class NullOps : IDevPagemapOps
    {
        public void PageFree(DevPagemap pgmap, ulong pfn) { }
        public VmFaultResult MigrateToRam(in VmFault vmf) => VmFaultResult.SigBus;
    }

    // request_free_mem_region searches the free physical address space: a range given back by
    // memunmap_pages is found again, so hot-remove / hot-add cycles do not march device pfns upwards
    // (they would pass a device PTE's frame field after enough cycles: issue 8's Everything(2) soak).
    [Test]
    public void RemovedRange_IsReusedByTheNextHotplug_NeighboursMerged()
    {
        using var machine = NewMachine();
        var ops = new NullOps();
        object owner = new();
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, 2 << 20, owner, ops, out var a), Is.EqualTo(Errno.Ok));
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, 2 << 20, owner, ops, out var b), Is.EqualTo(Errno.Ok));
        ulong firstA = a!.FirstPfn, firstB = b!.FirstPfn;
        Assert.That(firstB, Is.GreaterThan(firstA));
        Assert.That(a.Remove(), Is.EqualTo(Errno.Ok));
        Assert.That(b.Remove(), Is.EqualTo(Errno.Ok));
        for (int i = 0; i < 100; i++)
        {
            Assert.That(DevPagemap.Create(machine, DevicePageKind.Coherent, 2 << 20, owner, ops, out var c), Is.EqualTo(Errno.Ok));
            Assert.That(c!.FirstPfn, Is.EqualTo(firstA), "the lowest released range is taken first");
            Assert.That(c.Remove(), Is.EqualTo(Errno.Ok));
        }
        // The two released neighbours merged: a range twice as large fits where both were.
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, (ulong)(firstB - firstA) * 4096 * 2, owner, ops, out var big), Is.EqualTo(Errno.Ok));
        Assert.That(big!.FirstPfn, Is.EqualTo(firstA));
        Assert.That(big.Remove(), Is.EqualTo(Errno.Ok));
        machine.CheckInvariants();
    }

    // A.8 registration: PRIVATE needs ops (migrate_to_ram, folio_free) and an owner; COHERENT needs folio_free and an owner; nr_range non-zero.
    [Test]
    public void Create_RegistrationRules_EinvalWithoutOwnerOpsOrSize()
    {
        using var machine = NewMachine();
        var ops = new NullOps();
        object owner = new();
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, 2 << 20, null, ops, out var pg), Is.EqualTo(Errno.EINVAL));
        Assert.That(pg, Is.Null);
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, 2 << 20, owner, null, out _), Is.EqualTo(Errno.EINVAL));
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Coherent, 2 << 20, null, ops, out _), Is.EqualTo(Errno.EINVAL));
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Coherent, 2 << 20, owner, null, out _), Is.EqualTo(Errno.EINVAL));
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, 0, owner, ops, out _), Is.EqualTo(Errno.EINVAL));
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, 4096, owner, ops, out _), Is.EqualTo(Errno.EINVAL));
        Assert.That(DevPagemap.Create(machine, (DevicePageKind)0, 2 << 20, owner, ops, out _), Is.EqualTo(Errno.EINVAL));
        Assert.That(DeviceMemoryRegistry.For(machine).All(), Is.Empty, "a refused registration must not hot-plug anything");
        machine.CheckInvariants();
    }

    // A.8: each type hot-plugs with its owner and ops; ranges are disjoint.
    [Test]
    public void Create_PrivateCoherentP2P_HotplugWithOwnerAndOps()
    {
        using var machine = NewMachine();
        var ops = new NullOps();
        object owner = new();
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Private, 4 << 20, owner, ops, out var priv), Is.EqualTo(Errno.Ok));
        Assert.That(DevPagemap.Create(machine, DevicePageKind.Coherent, 2 << 20, owner, ops, out var coh), Is.EqualTo(Errno.Ok));
        Assert.That(DevPagemap.Create(machine, DevicePageKind.P2PDma, 2 << 20, null, null, out var p2p), Is.EqualTo(Errno.Ok));
        Assert.That(priv!.Kind, Is.EqualTo(DevicePageKind.Private));
        Assert.That(priv.Owner, Is.SameAs(owner));
        Assert.That(priv.Ops, Is.SameAs(ops));
        Assert.That(priv.PageCount, Is.EqualTo(1024UL));
        Assert.That(coh!.Kind, Is.EqualTo(DevicePageKind.Coherent));
        Assert.That(p2p!.Kind, Is.EqualTo(DevicePageKind.P2PDma));
        var all = new[] { priv, coh, p2p };
        foreach (var a in all)
            foreach (var b in all)
                if (a != b) Assert.That(a.Contains(b.FirstPfn) || b.Contains(a.FirstPfn), Is.False, $"{a} overlaps {b}");
        Assert.That(priv.PagesInUse, Is.Zero);
        Assert.That(machine.DeviceMemory!.Classify(priv.FirstPfn), Is.EqualTo(DevicePageClass.Private));
        Assert.That(machine.DeviceMemory!.Classify(coh.FirstPfn), Is.EqualTo(DevicePageClass.Coherent));
        Assert.That(machine.DeviceMemory!.Classify(p2p.FirstPfn), Is.EqualTo(DevicePageClass.P2PDma));
        Assert.That(priv.Remove(), Is.EqualTo(Errno.Ok));
        Assert.That(coh.Remove(), Is.EqualTo(Errno.Ok));
        Assert.That(p2p.Remove(), Is.EqualTo(Errno.Ok));
        machine.CheckInvariants();
    }

    // A.8 lifecycle + MIG-R10: init from refcount 0 only; folio_free when the last reference goes; reuse only after it.
    [Test]
    public void Lifecycle_InitFromZero_PageFreeOnLastReference_NoReuseBefore()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, PrivAnon);
        Fill(p, a, 1);
        Assert.That(dev.MigrateToDevice(p, a, 1), Is.EqualTo(1));
        ulong pfn = p.Mm.EntryAt(a).Pfn;
        Assert.That(dev.Pgmap.Contains(pfn), Is.True);
        Assert.That(dev.Pgmap.RefCount(pfn), Is.EqualTo(1), "only the mapping holds the device page");
        var ex = Assert.Throws<KernelBugException>(() => dev.Pgmap.InitPage(pfn));
        Assert.That(ex!.Message, Does.Contain("MIG-R10"));
        Assert.That(dev.PageFrees, Is.Zero);
        machine.CheckInvariants();

        p.Munmap(a, P);
        Assert.That(dev.PageFrees, Is.EqualTo(1));
        Assert.That(dev.FreedPfns, Is.EqualTo(new[] { pfn }));
        Assert.That(dev.Pgmap.RefCount(pfn), Is.Zero);
        // Free again: the driver may initialise it (refcount 1, locked) and release it.
        dev.Pgmap.InitPage(pfn);
        Assert.That(dev.Pgmap.RefCount(pfn), Is.EqualTo(1));
        Assert.Throws<KernelBugException>(() => dev.Pgmap.InitPage(pfn), "initialising a referenced page twice is MIG-R10");
        machine.UnlockPage(pfn);
        machine.PutPage(pfn);
        Assert.That(dev.PageFrees, Is.EqualTo(2));
        Assert.That(dev.Pgmap.RefCount(pfn), Is.Zero);
        machine.CheckInvariants();
    }

    // A.8 teardown: memunmap_pages while pages are referenced → EBUSY; removing twice is a bug.
    [Test]
    public void Remove_WhilePagesInUse_Ebusy_ThenOkOnceFree_TwiceIsBug()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private, bytes: 2 << 20);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        Assert.That(dev.MigrateToDevice(p, a, 4), Is.EqualTo(4));
        Assert.That(dev.Pgmap.PagesInUse, Is.EqualTo(4));
        Assert.That(dev.Pgmap.Remove(), Is.EqualTo(Errno.EBUSY));
        Assert.That(dev.Pgmap.IsRemoved, Is.False);
        p.Munmap(a, 4 * P);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        Assert.That(dev.Pgmap.Remove(), Is.EqualTo(Errno.Ok));
        Assert.That(dev.Pgmap.IsRemoved, Is.True);
        var ex = Assert.Throws<KernelBugException>(() => dev.Pgmap.Remove());
        Assert.That(ex!.Message, Does.Contain("DEV-R01"));
        machine.CheckInvariants();
    }

    // B.6 device-side eviction (migrate_device_range, CLEAR owner none for mapped pages) + early removal: every
    // mapped page comes back with its data, shared mappings (fork) included, then the range goes away.
    [Test]
    public void EvictAndRemove_MigratesEveryMappedPageBack_DataIntact_ThenRemoved()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(8 * P, RW, PrivAnon);
        Fill(p, a, 8);
        Assert.That(dev.MigrateToDevice(p, a, 8), Is.EqualTo(8));
        var child = p.Fork();
        using var rec = NotifierRecorder.Attach(p.Mm);
        using var crec = NotifierRecorder.Attach(child.Mm);
        ulong firstDevPfn = p.Mm.EntryAt(a).Pfn;

        Assert.That(MigrateDevice.EvictAndRemove(dev.Pgmap), Is.EqualTo(Errno.Ok));

        Assert.That(dev.Pgmap.IsRemoved, Is.True);
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        Assert.That(dev.MigrateToRamCalls, Is.Zero, "eviction does not go through CPU faults");
        var expected = Enumerable.Range(0, 8).Select(i => new RecordedEvent(NotifyEvent.Clear, a + (ulong)i * P, a + (ulong)(i + 1) * P, true, null)).ToArray();
        Assert.That(rec.Events, Is.EquivalentTo(expected));
        Assert.That(crec.Events, Is.EquivalentTo(expected));
        for (int i = 0; i < 8; i++)
        {
            ulong va = a + (ulong)i * P;
            var pe = p.Mm.EntryAt(va);
            var ce = child.Mm.EntryAt(va);
            Assert.That(pe.Kind, Is.EqualTo(PteKind.Present), $"parent page {i}");
            Assert.That(ce.Kind, Is.EqualTo(PteKind.Present), $"child page {i}");
            Assert.That(ce.Pfn, Is.EqualTo(pe.Pfn), "both mappings move to the same system page");
            Assert.That(pe.IsWritable, Is.False, "fork made them read-only; eviction keeps that");
            Assert.That(machine.DeviceMemory?.Classify(pe.Pfn) ?? DevicePageClass.None, Is.EqualTo(DevicePageClass.None));
        }
        Assert.That(pe0(p, a), Is.Not.EqualTo(firstDevPfn));
        AssertFilled(p, a, 8);
        AssertFilled(child, a, 8);
        child.Store(a, 7);
        AssertFilled(p, a, 8);
        Assert.That(child.Load<int>(a), Is.EqualTo(7));
        machine.CheckInvariants();
        ExitAll(machine);

        static ulong pe0(Process p, ulong a) => p.Mm.EntryAt(a).Pfn;
    }

    // Early removal of coherent memory and of a device THP: data intact, PageFree for each folio.
    [Test]
    public void EvictAndRemove_CoherentPagesAndDeviceThp_DataIntact()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private) { Compound = true };
        var coh = new TestDevice(machine, DevicePageKind.Coherent, name: "coh");
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 << 20, RW, PrivAnon);
        ulong thp = (a + Huge - 1) & ~(Huge - 1);
        p.Madvise(thp, Huge, Advice.HugePage);
        Fill(p, thp, 512);
        Assert.That(p.Mm.EntryAt(thp).IsHuge, Is.True);
        Assert.That(dev.MigrateToDevice(p, thp, 512), Is.EqualTo(512));
        Assert.That(p.Mm.EntryAt(thp).IsHuge, Is.True);
        ulong c = thp + Huge;
        Fill(p, c, 4, seed: 5000);
        Assert.That(coh.MigrateToDevice(p, c, 4), Is.EqualTo(4));
        Assert.That(coh.Pgmap.Contains(p.Mm.EntryAt(c).Pfn), Is.True);

        Assert.That(MigrateDevice.EvictAndRemove(dev.Pgmap), Is.EqualTo(Errno.Ok));
        Assert.That(MigrateDevice.EvictAndRemove(coh.Pgmap), Is.EqualTo(Errno.Ok));
        Assert.That(dev.Allocations, Is.EqualTo(1), "one 2 MiB device folio");
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        Assert.That(coh.PageFrees, Is.EqualTo(coh.Allocations));
        Assert.That(p.Mm.EntryAt(thp).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(p.Mm.EntryAt(c).Kind, Is.EqualTo(PteKind.Present));
        AssertFilled(p, thp, 512);
        AssertFilled(p, c, 4, seed: 5000);
        machine.CheckInvariants();
        ExitAll(machine);
    }
}
