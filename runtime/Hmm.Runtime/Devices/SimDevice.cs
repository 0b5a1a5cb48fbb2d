using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Pci;
using Hmm.Runtime.Telemetry;

namespace Hmm.Runtime.Devices;

/// <summary>Configuration of a <see cref="SimDevice"/>.</summary>
public sealed record SimDeviceOptions
{
    /// <summary>Replayable fault-buffer entries (the hardware ring size nouveau reads at init; UVM clamps its 256-entry batches to it).</summary>
    public int FaultBufferEntries { get; init; } = 4096;

    /// <summary>Whether an IOMMU translates the device's system-memory accesses (bus addresses must then be DMA-mapped).</summary>
    public bool IommuEnabled { get; init; }

    /// <summary>The simulated-time costs of device actions.</summary>
    public CostModel Costs { get; init; } = CostModel.Default;
}

/// <summary>
/// A simulated device (a GPU, an RDMA NIC): its PCI function, device memory, an MMU translating
/// virtual addresses through one <see cref="DevicePageTable"/> per attached address space
/// (instance), a replayable <see cref="FaultBuffer"/>, a <see cref="CopyEngine"/>, an
/// <see cref="Iommu"/>, an executor of logical device threads, and a <see cref="SimClock"/> that
/// every device action charges with the <see cref="CostModel"/>. Drivers drive it; it never
/// touches CPU page tables itself.
/// </summary>
public sealed class SimDevice : IDeviceMmu
{
    private DevicePageTable?[] _tables = new DevicePageTable?[4];

    /// <summary>Creates a device named <paramref name="name"/>, optionally placed at <paramref name="pci"/> in a topology.</summary>
    public SimDevice(Machine machine, string name, SimDeviceOptions? options = null, PciFunction? pci = null)
    {
        Machine = machine;
        Name = name;
        Options = options ?? new SimDeviceOptions();
        Pci = pci;
        Clock = new SimClock();
        Meters = new DeviceMeters(name, Clock);
        Faults = new FaultBuffer(Options.FaultBufferEntries);
        Copy = new CopyEngine(machine, Clock, Options.Costs, Meters);
        Iommu = new Iommu(name, Options.IommuEnabled);
        Executor = new DeviceExecutor(machine, Faults, this, () => Clock.Now);
    }

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>The device name (also the meters' device tag).</summary>
    public string Name { get; }

    /// <summary>The options it was built with.</summary>
    public SimDeviceOptions Options { get; }

    /// <summary>Its PCI function, when placed in a topology (for p2p distance).</summary>
    public PciFunction? Pci { get; }

    /// <summary>Simulated time of this device.</summary>
    public SimClock Clock { get; }

    /// <summary>Counters published on the "Hmm.Runtime" meter.</summary>
    public DeviceMeters Meters { get; }

    /// <summary>The replayable fault buffer.</summary>
    public FaultBuffer Faults { get; }

    /// <summary>The DMA copy engine (charges transfer time).</summary>
    public CopyEngine Copy { get; }

    /// <summary>The device's IOMMU domain.</summary>
    public Iommu Iommu { get; }

    /// <summary>The engines running logical device threads.</summary>
    public DeviceExecutor Executor { get; }

    /// <summary>The device's local memory, for the VRAM aperture (frame = page index in it).</summary>
    public DevPagemap? LocalMemory { get; set; }

    /// <summary>
    /// The decode of <see cref="DeviceAperture.Peer"/> entries (frame = bus page number of a peer's
    /// memory); without it every peer entry faults as an unsupported request.
    /// </summary>
    public IPeerAperture? PeerAperture { get; set; }

    /// <summary>Attaches a mirror page table as a new address space (instance pointer); returns its instance id.</summary>
    public int Attach(DevicePageTable table)
    {
        for (int i = 1; i < _tables.Length; i++)
        {
            if (_tables[i] != null) continue;
            _tables[i] = table;
            return i;
        }
        int id = _tables.Length;
        Array.Resize(ref _tables, id * 2);
        _tables[id] = table;
        return id;
    }

    /// <summary>Detaches address space <paramref name="instance"/>; later accesses from it miss.</summary>
    public void Detach(int instance) => _tables[instance] = null;

    /// <summary>The mirror page table of <paramref name="instance"/>, or null.</summary>
    public DevicePageTable? PageTableOf(int instance) => instance > 0 && instance < _tables.Length ? _tables[instance] : null;

    /// <inheritdoc/>
    public DeviceMmuResult Translate(int instance, ulong va, DeviceAccess access, out ulong pfn)
    {
        pfn = 0;
        var table = PageTableOf(instance);
        if (table == null) return DeviceMmuResult.Miss;
        bool write = access is DeviceAccess.Write or DeviceAccess.Atomic;
        var result = table.Translate(va, write, access == DeviceAccess.Atomic, out var t);
        if (result != DeviceMmuResult.Hit) return result;
        switch (t.Aperture)
        {
            case DeviceAperture.System when Iommu.Enabled:
                return Iommu.Translate(t.Frame << Page.Shift, write, out pfn) ? DeviceMmuResult.Hit : DeviceMmuResult.IommuFault;
            case DeviceAperture.Vram:
                if (LocalMemory == null || t.Frame >= LocalMemory.PageCount) return DeviceMmuResult.IommuFault;
                pfn = LocalMemory.FirstPfn + t.Frame;
                return DeviceMmuResult.Hit;
            case DeviceAperture.Peer:
                return PeerAperture != null && PeerAperture.ResolveBus(t.Frame << Page.Shift, out pfn) ? DeviceMmuResult.Hit : DeviceMmuResult.IommuFault;
            default:
                pfn = t.Frame;
                return DeviceMmuResult.Hit;
        }
    }

    /// <summary>Runs the device threads until each finishes or faults; returns the threads that faulted.</summary>
    public int Run()
    {
        long before = Executor.FaultsRaised;
        int parked = Executor.Run();
        Meters.AddFaults(Executor.FaultsRaised - before);
        return parked;
    }

    /// <summary>
    /// The driver fetches up to <paramref name="batch"/>.Length faults (one fault batch): charges
    /// the per-batch and per-fault service cost and returns the count.
    /// </summary>
    public int FetchFaults(Span<FaultEntry> batch)
    {
        int n = Faults.Drain(batch);
        if (n == 0) return 0;
        Meters.AddFaultBatches(1);
        Clock.Advance(Options.Costs.FaultBatchServiceNs(n));
        return n;
    }

    /// <summary>Fault replay: parked threads re-execute their faulting access. Returns how many resumed.</summary>
    public int Replay()
    {
        Meters.AddReplays(1);
        Clock.Advance(Options.Costs.ReplayNs);
        Faults.ClearOverflow();
        return Executor.Replay();
    }

    /// <summary>Fault cancel: the threads stalled on <paramref name="fault"/>'s page fail. Returns how many.</summary>
    public int Cancel(in FaultEntry fault)
    {
        Meters.AddCancels(1);
        return Executor.Cancel(fault.Address);
    }

    /// <summary>
    /// Invalidates [start, end) of <paramref name="instance"/>'s mirror (the driver's notifier
    /// callback): clears the entries and charges one TLB invalidation. Returns entries cleared.
    /// </summary>
    public long Invalidate(int instance, ulong start, ulong end)
    {
        var table = PageTableOf(instance);
        if (table == null) return 0;
        long cleared = table.Clear(start, end);
        if (cleared > 0)
        {
            Meters.AddTlbInvalidations(1);
            Clock.Advance(Options.Costs.TlbInvalidateNs);
        }
        return cleared;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({Meters})";
}
