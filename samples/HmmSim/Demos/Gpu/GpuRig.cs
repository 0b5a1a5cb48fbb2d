using System.Reflection;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.Nouveau;

namespace Hmm.Samples.HmmSim.Demos.Gpu;

/// <summary>
/// The simulated machine of a GPU demo: RAM sized for the workload, one process, one GPU
/// (<see cref="SimDevice"/>) and the nouveau-like DSL driver attached to it in the demo's policy.
/// Runs kernels through the driver, samples the report's timeline (only when the recorder is on),
/// and collects the counters every GPU demo prints.
/// </summary>
public sealed class GpuRig : IDisposable
{
    private static readonly PropertyInfo[] SnapshotFields = typeof(GpuCounterSnapshot).GetProperties(BindingFlags.Public | BindingFlags.Instance);

    private readonly TimelineRecorder _recorder;
    private readonly List<(ulong Start, int Pages)> _tracked = [];
    private readonly Action? _afterService;
    private readonly long _t0;

    /// <summary>A machine with room for <paramref name="pages"/> pages of workload, the driver in <paramref name="policy"/>.</summary>
    public GpuRig(int pages, GpuPolicyMode policy, TimelineRecorder recorder, UvmPolicyOptions? uvm = null)
    {
        ArgumentNullException.ThrowIfNull(recorder);
        _recorder = recorder;
        // Room for the workload twice over (copies, page tables, COW) and never less than 256 MiB.
        long ram = Math.Max(256L << 20, 3L * pages * Page.Size);
        // Lock validation stays on: a demo is also a check that the driver keeps lockdep's rules.
        Machine = new Machine(new MachineOptions { SystemMemory = ram });
        Process = Machine.CreateProcess("app");
        Device = new SimDevice(Machine, "gpu0");
        Gpu = new NouveauGpu();
        var e = Gpu.Attach(Device, Process);
        if (e != Errno.Ok) throw new InvalidOperationException($"the GPU driver did not attach: {e}");
        if (policy == GpuPolicyMode.Uvm) Gpu.Svm.Switch(GpuPolicyMode.Uvm, uvm ?? UvmPolicyOptions.Default);
        _t0 = Device.Clock.Now;
        _afterService = recorder.Enabled ? Sample : null;
    }

    /// <summary>The simulated machine.</summary>
    public Machine Machine { get; }

    /// <summary>The application.</summary>
    public Process Process { get; }

    /// <summary>The GPU.</summary>
    public SimDevice Device { get; }

    /// <summary>The DSL driver.</summary>
    public NouveauGpu Gpu { get; }

    /// <summary>Its SVM logic (ioctls, counters, policy).</summary>
    public GpuSvm Svm => Gpu.Svm;

    /// <summary>Simulated time since the rig was built.</summary>
    public long Elapsed => Device.Clock.Now - _t0;

    /// <summary>The first word of page <paramref name="page"/> as the CPU fills it (distinct per page and seed).</summary>
    public static ulong Word(int page, ulong seed) => 0x5151_0000_0000UL + ((ulong)page << 8) + (seed & 0xFF) + ((seed >> 8) << 40);

    /// <summary>Maps an anonymous read-write buffer of <paramref name="pages"/> pages and tracks it for the residency chart.</summary>
    public ulong Map(int pages)
    {
        ulong buf = Process.Mmap((ulong)pages * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        _tracked.Add((buf, pages));
        return buf;
    }

    /// <summary>A tracked buffer whose page i starts with <see cref="Word"/>(i, seed), written by the CPU.</summary>
    public ulong Filled(int pages, ulong seed)
    {
        ulong buf = Map(pages);
        for (int i = 0; i < pages; i++) Process.Store(buf + ((ulong)i * Page.Size), Word(i, seed));
        return buf;
    }

    /// <summary>Runs <paramref name="kernel"/> through the driver (sampling after each fault-service pass when recording).</summary>
    public KernelRun Run(KernelDescription kernel)
    {
        var run = Svm.Run(kernel, _afterService);
        Sample();
        return run;
    }

    /// <summary>Records a timeline point and a residency frame now (nothing when the recorder is off).</summary>
    public void Sample()
    {
        if (!_recorder.Enabled) return;
        var c = Svm.Snapshot();
        long now = Elapsed;
        _recorder.Add(new TimelinePoint(now, c.Faults, c.PagesToVram, c.PagesFromVram, c.ThrashingEvents, 0, 0));
        _recorder.Add(new ResidencyFrame(now, Residency()));
    }

    /// <summary>
    /// Per tracked 2 MiB block: pages in VRAM (a device-private CPU entry), pages in system memory the
    /// GPU maps (remote access over PCIe, device-exclusive included) and pages only the CPU maps.
    /// Never-touched pages count nowhere.
    /// </summary>
    private BlockResidency[] Residency()
    {
        var blocks = new List<BlockResidency>();
        foreach (var (start, pages) in _tracked)
        {
            ulong end = start + ((ulong)pages * Page.Size);
            for (ulong block = start & ~(Page.PmdSize - 1); block < end; block += Page.PmdSize)
            {
                int cpu = 0, vram = 0, remote = 0;
                ulong lo = Math.Max(block, start), hi = Math.Min(block + Page.PmdSize, end);
                for (ulong va = lo; va < hi; va += Page.Size)
                {
                    var pte = Process.HasExited ? default : Process.Mm.EntryAt(va);
                    switch (pte.Kind)
                    {
                        case PteKind.DevicePrivate: vram++; break;
                        case PteKind.DeviceExclusive: remote++; break;
                        case PteKind.Present:
                            if (Gpu.IsAttached && Gpu.DeviceTable.Lookup(va, out _)) remote++;
                            else cpu++;
                            break;
                    }
                }
                blocks.Add(new BlockResidency(cpu, vram, remote));
            }
        }
        return [.. blocks];
    }

    /// <summary>Every driver counter (camelCase names) followed by <paramref name="extra"/>.</summary>
    public List<KeyValuePair<string, long>> Counters(params (string Name, long Value)[] extra)
    {
        var snapshot = Svm.Snapshot();
        var list = new List<KeyValuePair<string, long>>(SnapshotFields.Length + extra.Length);
        foreach (var p in SnapshotFields) list.Add(new(char.ToLowerInvariant(p.Name[0]) + p.Name[1..], (long)p.GetValue(snapshot)!));
        foreach (var (name, value) in extra) list.Add(new(name, value));
        return list;
    }

    /// <summary>The demo's epilogue: the driver unloads (VRAM evicted) if still attached, the process exits, every invariant holds.</summary>
    public void Finish()
    {
        if (Gpu.IsAttached)
        {
            var e = Svm.Unload();
            if (e != Errno.Ok) throw new InvalidOperationException($"unload failed: {e}");
        }
        if (!Process.HasExited) Process.Exit();
        Machine.CheckInvariants();
    }

    /// <inheritdoc/>
    public void Dispose() => Machine.Dispose();
}
