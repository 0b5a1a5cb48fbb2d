using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Pci;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Pci;

/// <summary>pci_p2pdma_distance_many, pci_p2pmem_find_many and the provider API (reference/kernel-hmm.md G.1).</summary>
public class P2pMemTests
{
    private Machine _machine = null!;

    [SetUp] public void SetUp() => _machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
    [TearDown] public void TearDown() { _machine.CheckInvariants(); _machine.Dispose(); }

    /// <summary>
    /// Host bridge 0x2030 (whitelisted) with root port 1 → switch (3 ports) → a, b, c and root port 2 → d.
    /// Distances: a–b 4, a–d 6 (4 + 2 nodes up to no common upstream, through the host bridge).
    /// </summary>
    private (PciTopology T, PciFunction A, PciFunction B, PciFunction C, PciFunction D) Tree(ushort hostDevice = 0x2030)
    {
        var t = new PciTopology(_machine);
        var hb = t.AddHostBridge(PciTopology.VendorIntel, hostDevice);
        var sw = t.AddSwitch(t.AddRootPort(hb, 1), 3);
        var a = t.AddEndpoint(sw.DownstreamPorts[0], 0x10de, 1);
        var b = t.AddEndpoint(sw.DownstreamPorts[1], 0x10de, 1);
        var c = t.AddEndpoint(sw.DownstreamPorts[2], 0x144d, 0xa808);
        var d = t.AddEndpoint(t.AddRootPort(hb, 2), 0x15b3, 0x1017);
        return (t, a, b, c, d);
    }

    private static void Provide(PciFunction f, bool publish = true)
    {
        f.AddBar(2, 2UL << 20);
        Assert.That(P2pMem.AddResource(f, 2, 0, 0), Is.EqualTo(Errno.Ok));
        P2pMem.Publish(f, publish);
    }

    // G.1 distance_many: −1 for no clients, 0 when the provider is the only client, else the sum.
    [Test]
    public void DistanceManySumsDistances()
    {
        var (_, a, b, c, d) = Tree();
        Assert.That(P2pDma.DistanceMany(a, ReadOnlySpan<PciFunction?>.Empty), Is.EqualTo(-1));
        Assert.That(P2pDma.DistanceMany(a, new PciFunction?[] { a }), Is.Zero);
        Assert.That(P2pDma.DistanceMany(a, new PciFunction?[] { b, c }), Is.EqualTo(8));
        Assert.That(P2pDma.Distance(a, d, out var type), Is.EqualTo(6));
        Assert.That(type, Is.EqualTo(P2pMapType.ThruHostBridge));
        Assert.That(P2pDma.DistanceMany(a, new PciFunction?[] { b, c, d }), Is.EqualTo(14));
    }

    // G.1 distance_many: any NOT_SUPPORTED client, or a client without a PCI ancestor, → −1.
    [Test]
    public void DistanceManyFailsIfAnyClientFails()
    {
        var (_, a, b, _, d) = Tree(hostDevice: 0x1234);
        Assert.That(P2pDma.DistanceMany(a, new PciFunction?[] { b }), Is.EqualTo(4));
        Assert.That(P2pDma.DistanceMany(a, new PciFunction?[] { b, d }), Is.EqualTo(-1));
        Assert.That(P2pDma.DistanceMany(a, new PciFunction?[] { b, null }), Is.EqualTo(-1));
    }

    // G.1 find_many: only devices that published p2p memory; smallest total distance wins.
    [Test]
    public void FindManyPicksTheClosestPublishedProvider()
    {
        var (t, a, b, c, d) = Tree();
        Assert.That(P2pDma.FindMany(t, new PciFunction?[] { b }), Is.Null, "nobody published");
        Provide(d);
        Provide(c, publish: false);
        Assert.That(P2pDma.FindMany(t, new PciFunction?[] { a, b }), Is.SameAs(d), "c is closer but unpublished");
        P2pMem.Publish(c);
        Assert.That(P2pDma.FindMany(t, new PciFunction?[] { a, b }), Is.SameAs(c), "c: 4 + 4 < d: 6 + 6");
        Assert.That(P2pDma.FindMany(t, new PciFunction?[] { d }), Is.SameAs(d), "the provider itself: distance 0");
        Assert.That(P2pDma.FindMany(t, ReadOnlySpan<PciFunction?>.Empty), Is.Null);
    }

    // G.1 find_many: "ties broken uniformly at random" — with an injected Random every tied provider gets picked.
    [Test]
    public void FindManyBreaksTiesWithTheInjectedRandom()
    {
        var (t, a, b, c, _) = Tree();
        Provide(b);
        Provide(c);
        var picks = new HashSet<PciFunction>();
        for (int seed = 0; seed < 32; seed++) picks.Add(P2pDma.FindMany(t, new PciFunction?[] { a }, new Random(seed))!);
        Assert.That(picks, Is.EquivalentTo(new[] { b, c }));
        var first = P2pDma.FindMany(t, new PciFunction?[] { a }, new Random(7));
        Assert.That(P2pDma.FindMany(t, new PciFunction?[] { a }, new Random(7)), Is.SameAs(first), "deterministic per seed");
    }

    // G.1 provider side: BAR must be MEM; offset < length; size 0 = rest; size + offset ≤ length else EINVAL.
    [Test]
    public void AddResourceChecksTheBar()
    {
        var (_, a, _, _, _) = Tree();
        a.AddBar(0, 4UL << 20);
        a.AddBar(1, 4096, PciBarKind.Io);
        Assert.That(P2pMem.AddResource(a, 1, 0, 0), Is.EqualTo(Errno.EINVAL), "I/O BAR");
        Assert.That(P2pMem.AddResource(a, 3, 0, 0), Is.EqualTo(Errno.EINVAL), "no such BAR");
        Assert.That(P2pMem.AddResource(a, 0, 0, 4UL << 20), Is.EqualTo(Errno.EINVAL), "offset == length");
        Assert.That(P2pMem.AddResource(a, 0, 2UL << 20, 3UL << 20), Is.EqualTo(Errno.EINVAL), "size + offset > length");
        Assert.That(a.P2p, Is.Null, "nothing set up by a failed call");

        Assert.That(P2pMem.AddResource(a, 0, 0, 1UL << 20), Is.EqualTo(Errno.Ok), "size 0 = rest of the BAR");
        Assert.That(P2pMem.Size(a), Is.EqualTo(3UL << 20));
        Assert.That(P2pMem.Available(a), Is.EqualTo(3UL << 20));
        var r = a.P2p!.Resources.Single();
        Assert.That(r.Pagemap.Kind, Is.EqualTo(DevicePageKind.P2PDma));
        Assert.That(r.Pagemap.Owner, Is.SameAs(a));
        Assert.That(r.CpuPhysStart, Is.EqualTo(a.Bar(0)!.CpuPhysStart + (1UL << 20)));
        Assert.That(a.P2p.Published, Is.False);
    }

    // G.1 provider side: pci_alloc_p2pmem / pci_free_p2pmem / virt_to_bus (bus = CPU phys + bus_offset).
    [Test]
    public void AllocFreeAndBusAddresses()
    {
        var (_, a, _, _, _) = Tree();
        var bar = a.AddBar(4, 2UL << 20, busOffset: -0x10_0000_0000);
        Assert.That(P2pMem.Alloc(a, 4096), Is.Zero, "no p2pdma state yet");
        Assert.That(P2pMem.AddResource(a, 4, 0, 0), Is.EqualTo(Errno.Ok));
        ulong x = P2pMem.Alloc(a, 3 * 4096);
        ulong y = P2pMem.Alloc(a, 100);
        Assert.That(x, Is.EqualTo(bar.CpuPhysStart));
        Assert.That(y, Is.EqualTo(bar.CpuPhysStart + 3 * 4096UL));
        Assert.That(P2pMem.Available(a), Is.EqualTo((2UL << 20) - 4 * 4096UL));
        Assert.That(P2pMem.VirtToBus(a, y), Is.EqualTo(y - 0x10_0000_0000));
        Assert.That(P2pMem.Alloc(a, 2UL << 20), Is.Zero, "pool exhausted");
        P2pMem.Free(a, x, 3 * 4096);
        Assert.That(P2pMem.Alloc(a, 2 * 4096), Is.EqualTo(x), "first fit reuses the hole");
        Assert.Throws<KernelBugException>(() => P2pMem.Free(a, bar.CpuPhysStart + (1UL << 20), 4096));
    }

    // G.1 DMA address rules: BUS_ADDR → bus address; THRU_HOST_BRIDGE → CPU physical (no IOVA modelled); NOT_SUPPORTED → error.
    [Test]
    public void DmaAddressFollowsTheMapType()
    {
        var (_, a, b, _, d) = Tree();
        a.AddBar(0, 2UL << 20, busOffset: 0x1000_0000);
        Assert.That(P2pMem.AddResource(a, 0, 0, 0), Is.EqualTo(Errno.Ok));
        ulong mem = P2pMem.Alloc(a, 4096);
        Assert.That(P2pMem.TryDmaAddress(a, b, mem, out ulong dma, out var type), Is.True);
        Assert.That((type, dma), Is.EqualTo((P2pMapType.BusAddr, mem + 0x1000_0000)));
        Assert.That(P2pMem.TryDmaAddress(a, d, mem, out dma, out type), Is.True);
        Assert.That((type, dma), Is.EqualTo((P2pMapType.ThruHostBridge, mem)));
    }
}
