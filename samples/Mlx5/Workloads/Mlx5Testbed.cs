using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Pci;
using Hmm.Samples.Nouveau;

namespace Hmm.Samples.Mlx5;

/// <summary>Where the GPU sits relative to the server's NIC on the PCI tree.</summary>
public enum PeerPath
{
    /// <summary>Both below one PCIe switch: p2p goes straight through the switch (BUS_ADDR).</summary>
    SameSwitch,

    /// <summary>Below two host bridges that are not whitelisted for p2p: the path is NOT_SUPPORTED.</summary>
    HostBridgeInTheWay,
}

/// <summary>How the testbed is built.</summary>
public sealed record Mlx5TestbedOptions
{
    /// <summary>System RAM.</summary>
    public long SystemMemory { get; init; } = 256L << 20;

    /// <summary>The NICs' options (inline faults by default: the demos are deterministic).</summary>
    public Mlx5Options Nic { get; init; } = new() { InlineFaults = true };

    /// <summary>GPUs attached to the server process (0, 1 or 2).</summary>
    public int Gpus { get; init; }

    /// <summary>
    /// Whether the GPUs share one pgmap owner (a <see cref="Nouveau.GpuHive"/>, the AMD-style "same
    /// hive" variant of F.4.4): they then map each other's VRAM in place instead of migrating it.
    /// </summary>
    public bool GpuHive { get; init; }

    /// <summary>The PCI path between the first GPU and the server's NIC.</summary>
    public PeerPath Path { get; init; } = PeerPath.SameSwitch;

    /// <summary>Lock validation (on in tests; the benchmarks turn it off).</summary>
    public bool LockValidation { get; init; } = true;
}

/// <summary>
/// The F.2 / F.4 rig: one machine, a client and a server process, two mlx5-like NICs (client's A,
/// server's B) with one PD and one connected RC QP each over the <see cref="LoopbackFabric"/>, and
/// optionally nouveau-like GPUs mirroring the server, all placed in a PCI topology.
/// </summary>
public sealed class Mlx5Testbed : IDisposable
{
    private const ushort Mellanox = 0x15b3, Nvidia = 0x10de;
    private readonly List<MemoryRegion> _regions = [];
    private bool _finished;

    /// <summary>Builds the rig.</summary>
    public Mlx5Testbed(Mlx5TestbedOptions? options = null)
    {
        Options = options ?? new Mlx5TestbedOptions();
        Machine = new Machine(new MachineOptions { SystemMemory = Options.SystemMemory, LockValidation = Options.LockValidation });
        Topology = new PciTopology(Machine);
        var sw = Topology.AddSwitch(Topology.AddRootPort(Topology.AddHostBridge(PciTopology.VendorIntel, 0x1234), 1), 4);
        var nicB = Topology.AddEndpoint(sw.DownstreamPorts[0], Mellanox, 0x1017);
        var nicA = Topology.AddEndpoint(sw.DownstreamPorts[1], Mellanox, 0x1017);
        PciFunction gpuA = Options.Path == PeerPath.SameSwitch
            ? Topology.AddEndpoint(sw.DownstreamPorts[2], Nvidia, 0x1db4)
            : Topology.AddEndpoint(Topology.AddRootPort(Topology.AddHostBridge(PciTopology.VendorIntel, 0x5678), 1), Nvidia, 0x1db4);
        var gpuB = Topology.AddEndpoint(sw.DownstreamPorts[3], Nvidia, 0x1db4);

        Client = Machine.CreateProcess("client");
        Server = Machine.CreateProcess("server");
        NicA = new Mlx5IbDevice(new SimDevice(Machine, "mlx5_0", pci: nicA), Options.Nic);
        NicB = new Mlx5IbDevice(new SimDevice(Machine, "mlx5_1", pci: nicB), Options.Nic);
        PdA = NicA.AllocPd(Client);
        PdB = NicB.AllocPd(Server);
        QpA = NicA.CreateQp(PdA);
        QpB = NicB.CreateQp(PdB);
        LoopbackFabric.Connect(QpA, QpB);
        if (Options.GpuHive && Options.Gpus >= 1) Hive = new GpuHive();
        if (Options.Gpus >= 1) Gpu = AttachGpu("gpu0", gpuA);
        if (Options.Gpus >= 2) Gpu2 = AttachGpu("gpu1", gpuB);
    }

    private NouveauGpu AttachGpu(string name, PciFunction pci)
    {
        var gpu = new NouveauGpu(hive: Hive);
        var e = gpu.Attach(new SimDevice(Machine, name, pci: pci), Server);
        if (e == Errno.Ok && Hive != null) e = Hive.Join(gpu);
        if (e != Errno.Ok) throw new InvalidOperationException($"{name}: attach failed ({e})");
        return gpu;
    }

    /// <summary>The options.</summary>
    public Mlx5TestbedOptions Options { get; }

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>The PCI tree.</summary>
    public PciTopology Topology { get; }

    /// <summary>The process issuing RDMA (requester).</summary>
    public Process Client { get; }

    /// <summary>The process whose memory is the target (responder; the GPUs mirror it).</summary>
    public Process Server { get; }

    /// <summary>The client's NIC.</summary>
    public Mlx5IbDevice NicA { get; }

    /// <summary>The server's NIC.</summary>
    public Mlx5IbDevice NicB { get; }

    /// <summary>The client's PD.</summary>
    public ProtectionDomain PdA { get; }

    /// <summary>The server's PD.</summary>
    public ProtectionDomain PdB { get; }

    /// <summary>The client's QP.</summary>
    public QueuePair QpA { get; }

    /// <summary>The server's QP.</summary>
    public QueuePair QpB { get; }

    /// <summary>The first GPU (mirrors the server), if any.</summary>
    public NouveauGpu? Gpu { get; }

    /// <summary>The GPUs' shared pgmap owner when <see cref="Mlx5TestbedOptions.GpuHive"/>, else null.</summary>
    public GpuHive? Hive { get; }

    /// <summary>The second GPU, if any.</summary>
    public NouveauGpu? Gpu2 { get; }

    /// <summary>Simulated time charged to every device of the rig.</summary>
    public long SimulatedTimeNs => NicA.Device.Clock.Now + NicB.Device.Clock.Now + (Gpu?.Device.Clock.Now ?? 0) + (Gpu2?.Device.Clock.Now ?? 0);

    /// <summary>Anonymous private memory of <paramref name="pages"/> pages in <paramref name="process"/> (2 MiB aligned when <paramref name="address"/> is 0).</summary>
    public static ulong Map(Process process, long pages, ulong address = 0)
    {
        ArgumentNullException.ThrowIfNull(process);
        var flags = MapFlags.Private | MapFlags.Anonymous | (address != 0 ? MapFlags.Fixed : 0);
        if (address == 0)
        {
            // Over-map and trim so buffers start on a 2 MiB boundary (GPU chunks, THP collapse).
            ulong raw = process.Mmap((ulong)pages * Page.Size + Page.PmdSize, Prot.Read | Prot.Write, flags);
            ulong aligned = (raw + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
            if (aligned > raw) process.Munmap(raw, aligned - raw);
            ulong tail = raw + (ulong)pages * Page.Size + Page.PmdSize;
            ulong end = aligned + (ulong)pages * Page.Size;
            if (tail > end) process.Munmap(end, tail - end);
            return aligned;
        }
        return process.Mmap((ulong)pages * Page.Size, Prot.Read | Prot.Write, flags, addr: address);
    }

    /// <summary>Registers an ODP MR and remembers it for <see cref="Finish"/>.</summary>
    public MemoryRegion Register(Mlx5IbDevice nic, ProtectionDomain pd, ulong start, long pages, AccessFlags access = AccessFlags.All)
    {
        ArgumentNullException.ThrowIfNull(nic);
        var e = nic.RegMr(pd, start, (ulong)pages * Page.Size, access, out var mr);
        if (e != Errno.Ok) throw new InvalidOperationException($"reg_mr failed ({e})");
        _regions.Add(mr!);
        return mr!;
    }

    /// <summary>Registers the implicit ODP MR of <paramref name="pd"/>.</summary>
    public MemoryRegion RegisterImplicit(Mlx5IbDevice nic, ProtectionDomain pd)
    {
        ArgumentNullException.ThrowIfNull(nic);
        var e = nic.RegImplicitMr(pd, AccessFlags.All, out var mr);
        if (e != Errno.Ok) throw new InvalidOperationException($"reg_mr (implicit) failed ({e})");
        _regions.Add(mr!);
        return mr!;
    }

    /// <summary>Forgets a region deregistered by the caller.</summary>
    public void Forget(MemoryRegion mr) => _regions.Remove(mr);

    /// <summary>
    /// The epilogue: every region deregistered, GPUs unloaded (VRAM evicted), processes exited, and
    /// the machine's invariants checked (throws on the first violation).
    /// </summary>
    public void Finish()
    {
        if (_finished) return;
        _finished = true;
        NicA.FlushWork();
        NicB.FlushWork();
        foreach (var mr in _regions) mr.Pd.Nic.DeregMr(mr);
        _regions.Clear();
        NicA.FlushWork();
        NicB.FlushWork();
        foreach (var gpu in new[] { Gpu, Gpu2 })
            if (gpu is { IsAttached: true }) gpu.Svm.Unload();
        if (!Client.HasExited) Client.Exit();
        if (!Server.HasExited) Server.Exit();
        Machine.CheckInvariants();
    }

    /// <summary>Stops the NICs' workqueues and frees the machine.</summary>
    public void Dispose()
    {
        NicA.Dispose();
        NicB.Dispose();
        Machine.Dispose();
    }

    /// <summary>A reference pattern of <paramref name="bytes"/> bytes for <paramref name="seed"/> (every byte depends on seed and offset).</summary>
    public static byte[] Pattern(long bytes, int seed)
    {
        var data = new byte[bytes];
        new Random(seed).NextBytes(data);
        return data;
    }

    /// <summary>Whether <paramref name="process"/>'s memory at <paramref name="address"/> equals <paramref name="expected"/> (a CPU read: device-private pages come back).</summary>
    public static bool Matches(Process process, ulong address, ReadOnlySpan<byte> expected)
    {
        ArgumentNullException.ThrowIfNull(process);
        var actual = new byte[expected.Length];
        process.Read(address, actual);
        return expected.SequenceEqual(actual);
    }
}
