using Hmm.Runtime.Mm;
using Hmm.Runtime.Pci;
using Hmm.Runtime.Telemetry;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Pci;

/// <summary>Peer-to-peer through a VMA: the 2019 RFC's p2p_map / p2p_unmap contract (reference/kernel-hmm.md G.2).</summary>
public class P2pVmaTests
{
    private const ulong P = 4096;
    private const ulong Len = 16 * P;
    private Machine _machine = null!;
    private PciTopology _topo = null!;
    private PciFunction _gpu = null!, _nic = null!, _remote = null!;
    private P2pBarExporter _exporter = null!;
    private Process _proc = null!;
    private ulong _addr;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
        _topo = new PciTopology(_machine);
        var sw = _topo.AddSwitch(_topo.AddRootPort(_topo.AddHostBridge(PciTopology.VendorIntel, 0x1234), 1), 2);
        _gpu = _topo.AddEndpoint(sw.DownstreamPorts[0], 0x10de, 0x1db4);
        _nic = _topo.AddEndpoint(sw.DownstreamPorts[1], 0x15b3, 0x1017);
        _remote = _topo.AddEndpoint(_topo.AddRootPort(_topo.AddHostBridge(PciTopology.VendorIntel, 0x5678), 1), 0x15b3, 0x1017);
        _gpu.AddBar(1, 4UL << 20, busOffset: 0x2000_0000);
        Assert.That(P2pMem.AddResource(_gpu, 1, 0, 0), Is.EqualTo(Errno.Ok));
        _exporter = new P2pBarExporter(_gpu);
        _proc = _machine.CreateProcess("app");
        _addr = _proc.MmapDevice(Len, Prot.Read | Prot.Write, _exporter);
    }

    [TearDown]
    public void TearDown()
    {
        if (!_proc.HasExited) _proc.Exit();
        _machine.CheckInvariants();
        _machine.Dispose();
    }

    private Vma Vma => VmaAt(_addr);

    private Vma VmaAt(ulong address)
    {
        _proc.Mm.MmapLock.ReadLock();
        try { return _proc.Mm.FindVma(address)!; }
        finally { _proc.Mm.MmapLock.ReadUnlock(); }
    }

    // G.2: the memory need not be CPU-mapped at all; the special VMA has no ->fault, so a CPU access is SIGBUS.
    [Test]
    public void CpuAccessToNonCpuMappedP2pVmaIsBusError()
    {
        Assert.Throws<BusError>(() => _proc.Load<int>(_addr));
        Assert.Throws<BusError>(() => _proc.Store(_addr + 5 * P, 1));
        Assert.That(_exporter.BackingOf(Vma), Is.Not.Zero, "BAR memory is reserved nonetheless");
    }

    // G.2 mechanics + G.1 DMA rules: a reachable importer gets per-page bus addresses (BUS_ADDR through the switch)
    // and its DMA lands in the exporter's BAR memory.
    [Test]
    public void ImporterMapsThroughP2pMapAndReachesBarMemory()
    {
        var meters = new DeviceMeters("nic-" + Guid.NewGuid().ToString("N"));
        using var import = new P2pVmaImport(_nic, _proc.Mm, _addr, _addr + Len, write: true, meters);
        Assert.That(import.Map(), Is.EqualTo(Errno.Ok));
        Assert.That(import.IsMapped, Is.True);
        Assert.That(import.MapType, Is.EqualTo(P2pMapType.BusAddr));
        ulong backing = _exporter.BackingOf(Vma);
        Assert.That(import.Translate(_addr + 3 * P + 12, out ulong dma), Is.EqualTo(Errno.Ok));
        Assert.That(dma, Is.EqualTo(backing + 3 * P + 12 + 0x2000_0000), "bus address = CPU phys + bus_offset");
        Assert.That(_exporter.Maps, Is.EqualTo(1));
        Assert.That(meters.P2pMaps, Is.EqualTo(1));

        byte[] data = [1, 2, 3, 4, 5, 6, 7, 8];
        Assert.That(import.DmaWrite(_addr + 2 * P - 4, data), Is.EqualTo(Errno.Ok), "crosses a page");
        var res = _gpu.P2p!.ResourceOfCpu(backing)!;
        Assert.That(res.BytesAt(backing + 2 * P - 4)[..4].ToArray(), Is.EqualTo(new byte[] { 1, 2, 3, 4 }));
        Assert.That(res.BytesAt(backing + 2 * P)[..4].ToArray(), Is.EqualTo(new byte[] { 5, 6, 7, 8 }));
        var back = new byte[8];
        Assert.That(import.DmaRead(_addr + 2 * P - 4, back), Is.EqualTo(Errno.Ok));
        Assert.That(back, Is.EqualTo(data));
    }

    // G.2 "the importer must obey mmu notifier invalidations and call p2p_unmap … lets the exporter revoke at any time":
    // the exporter zaps (CLEAR) part of the range; the importer unmaps everything, its next access faults; re-import works.
    [Test]
    public void ExporterRevocationTearsDownImporterAndNextAccessFaults()
    {
        using var import = new P2pVmaImport(_nic, _proc.Mm, _addr, _addr + Len, write: false);
        Assert.That(import.Map(), Is.EqualTo(Errno.Ok));
        Assert.That(_exporter.ActiveMappings, Is.EqualTo(1));

        Assert.That(_exporter.Revoke(Vma, _addr + 4 * P, _addr + 6 * P), Is.EqualTo(Errno.Ok));
        Assert.That(import.IsMapped, Is.False);
        Assert.That(import.Revocations, Is.EqualTo(1));
        Assert.That(_exporter.Unmaps, Is.EqualTo(1));
        Assert.That(_exporter.ActiveMappings, Is.Zero);
        Assert.That(import.Translate(_addr, out _), Is.EqualTo(Errno.EFAULT), "next access faults");
        Assert.That(import.DmaRead(_addr, new byte[4]), Is.EqualTo(Errno.EFAULT));

        Assert.That(import.Map(), Is.EqualTo(Errno.Ok), "mapping again while the VMA lives succeeds");
        Assert.That(import.Translate(_addr, out _), Is.EqualTo(Errno.Ok));
        Assert.That(_exporter.Maps, Is.EqualTo(2));
    }

    // G.2: a revocation outside the imported range does not disturb the importer (notifier interval only).
    [Test]
    public void RevocationOutsideTheImportedRangeIsIgnored()
    {
        using var import = new P2pVmaImport(_nic, _proc.Mm, _addr, _addr + 4 * P, write: false);
        Assert.That(import.Map(), Is.EqualTo(Errno.Ok));
        Assert.That(_exporter.Revoke(Vma, _addr + 8 * P, _addr + 9 * P), Is.EqualTo(Errno.Ok));
        Assert.That(import.IsMapped, Is.True);
        Assert.That(import.Revocations, Is.Zero);
    }

    // G.2 "the exporting driver owns the policy and may refuse": the refusal errno is returned and nothing is mapped.
    [Test]
    public void AnExporterThatRefusesIsObeyed()
    {
        _exporter.Policy = (_, importer, _, _, write) => importer == _nic && write ? Errno.EPERM : Errno.Ok;
        using var import = new P2pVmaImport(_nic, _proc.Mm, _addr, _addr + Len, write: true);
        Assert.That(import.Map(), Is.EqualTo(Errno.EPERM));
        Assert.That(import.IsMapped, Is.False);
        Assert.That(import.Translate(_addr, out _), Is.EqualTo(Errno.EFAULT));
        Assert.That(import.DmaWrite(_addr, new byte[4]), Is.EqualTo(Errno.EFAULT));
        Assert.That(_exporter.Refusals, Is.EqualTo(1));
        Assert.That(_exporter.ActiveMappings, Is.Zero);

        using var reader = new P2pVmaImport(_nic, _proc.Mm, _addr, _addr + Len, write: false);
        Assert.That(reader.Map(), Is.EqualTo(Errno.Ok), "the same policy allows a read-only import");
        Assert.That(reader.DmaWrite(_addr, new byte[4]), Is.EqualTo(Errno.EACCES));
    }

    // G.2 + G.1: reachability is checked first — an importer the topology cannot serve (NOT_SUPPORTED) is refused
    // before the exporter is asked.
    [Test]
    public void UnreachableImporterIsRefusedBeforeAskingTheExporter()
    {
        using var import = new P2pVmaImport(_remote, _proc.Mm, _addr, _addr + Len, write: false);
        Assert.That(import.Map(), Is.EqualTo(Errno.EOPNOTSUPP));
        Assert.That(_exporter.Maps + _exporter.Refusals, Is.Zero);
    }

    // G.2: importing from a VMA without p2p hooks (ordinary anonymous memory) is EINVAL; outside any VMA EFAULT.
    [Test]
    public void OnlySpecialP2pVmasCanBeImported()
    {
        ulong anon = _proc.Mmap(Len, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        using (var i1 = new P2pVmaImport(_nic, _proc.Mm, anon, anon + Len, write: false))
            Assert.That(i1.Map(), Is.EqualTo(Errno.EINVAL));
        using var i2 = new P2pVmaImport(_nic, _proc.Mm, _addr, _addr + Len + P, write: false);
        Assert.That(i2.Map(), Is.EqualTo(Errno.EFAULT));
    }

    // G.2 + D: munmap of the exporter's VMA invalidates (UNMAP) the importer, then vm_ops->close frees the BAR memory.
    [Test]
    public void MunmapTearsDownImporterAndReleasesBarMemory()
    {
        ulong before = P2pMem.Available(_gpu);
        using var import = new P2pVmaImport(_nic, _proc.Mm, _addr, _addr + Len, write: false);
        Assert.That(import.Map(), Is.EqualTo(Errno.Ok));
        _proc.Munmap(_addr, Len);
        Assert.That(import.IsMapped, Is.False);
        Assert.That(import.Revocations, Is.EqualTo(1));
        Assert.That(P2pMem.Available(_gpu), Is.EqualTo(before + Len));
        Assert.That(import.Map(), Is.EqualTo(Errno.EFAULT), "the VMA is gone");
    }

    // zap_vma_ptes contract: only device-file VMAs, a range inside the VMA.
    [Test]
    public void ZapPtesChecksItsArguments()
    {
        Assert.That(Vma.ZapPtes(_addr, Len + P), Is.EqualTo(Errno.EINVAL));
        Assert.That(Vma.ZapPtes(_addr + 1, P), Is.EqualTo(Errno.EINVAL));
        ulong anon = _proc.Mmap(Len, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        Assert.That(VmaAt(anon).ZapPtes(anon, P), Is.EqualTo(Errno.EINVAL));
        Assert.That(Vma.ZapPtes(_addr, Len), Is.EqualTo(Errno.Ok));
    }
}
