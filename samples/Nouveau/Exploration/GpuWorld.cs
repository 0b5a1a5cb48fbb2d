using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Scheduling;

namespace Hmm.Samples.Nouveau.Exploration;

/// <summary>
/// The small world every GPU race starts from: a machine, one simulated GPU with the DSL driver
/// attached to one process, a buffer of <see cref="Pages"/> CPU-written pages and the reference
/// model of their first words. Registers the common oracles: every GPU PTE agrees with the CPU
/// page table (a stale device mapping is the classic HMM driver bug), contents equal the last
/// write, <c>CheckInvariants</c>, and after unload and exit no VRAM and no system page leaked.
/// </summary>
public sealed class GpuWorld
{
    /// <summary>Pages in the buffer.</summary>
    public const int Pages = 4;

    private readonly long _baseline;

    /// <summary>Builds the world for one schedule of <paramref name="ctx"/> with the driver <paramref name="create"/> makes (nouveau's when null).</summary>
    public GpuWorld(ExploreContext ctx, Func<GpuUnderTest>? create = null, GpuPolicyMode mode = GpuPolicyMode.Nouveau)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        Machine = new Machine(new MachineOptions { SystemMemory = 8L << 20, TransparentHugePages = false });
        ctx.Cleanup(Machine.Dispose);
        Device = new SimDevice(Machine, "gpu0");
        _baseline = Machine.UsedPages;
        Process = Machine.CreateProcess("app");
        var gpu = create?.Invoke() ?? Nouveau();
        Driver = gpu.Driver;
        Svm = gpu.Svm;
        if (mode == GpuPolicyMode.Uvm) Svm.Switch(GpuPolicyMode.Uvm, UvmPolicyOptions.Default);
        if (Driver.Attach(Device, Process) != Errno.Ok) throw new InvalidOperationException("the GPU driver did not attach");
        Buffer = Process.Mmap(Pages * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        for (int i = 0; i < Pages; i++)
        {
            Model[i] = 100 + (ulong)i;
            Process.Store(Address(i), Model[i]);
        }
    }

    /// <summary>nouveau's own declaration.</summary>
    public static GpuUnderTest Nouveau()
    {
        var gpu = new NouveauGpu();
        return new GpuUnderTest(gpu, gpu.Svm);
    }

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>The GPU.</summary>
    public SimDevice Device { get; }

    /// <summary>The process the GPU mirrors.</summary>
    public Process Process { get; }

    /// <summary>The driver (generated surface).</summary>
    public IGeneratedGpuDriver Driver { get; }

    /// <summary>Its SVM logic.</summary>
    public GpuSvm Svm { get; }

    /// <summary>Start of the buffer.</summary>
    public ulong Buffer { get; }

    /// <summary>The reference model: the last value written to the first word of each page.</summary>
    public ulong[] Model { get; } = new ulong[Pages];

    /// <summary>Pages [<see cref="UnmappedFrom"/>, <see cref="Pages"/>) were unmapped by the scenario (contents not checked there).</summary>
    public int UnmappedFrom { get; set; } = Pages;

    /// <summary>Address of page <paramref name="page"/>.</summary>
    public ulong Address(int page) => Buffer + ((ulong)page * Page.Size);

    /// <summary>Runs <paramref name="kernel"/> on the GPU; a thread whose fault was cancelled fails, the rest complete.</summary>
    public KernelRun Run(KernelDescription kernel) => Svm.Run(kernel);

    /// <summary>
    /// The GPU-table oracle: every page the GPU maps is mapped by the CPU to the same frame (a
    /// system page, or the device-private entry of this GPU's VRAM page).
    /// </summary>
    public void CheckGpuTableAgreesWithCpu(string when)
    {
        var table = Driver.DeviceTable;
        for (int i = 0; i < Pages; i++)
        {
            ulong va = Address(i);
            if (!table.Lookup(va, out var t)) continue;
            var cpu = Process.Mm.EntryAt(va);
            ExploreContext.Check(!cpu.IsNone && cpu.Pfn == t.Frame,
                $"{when}: the GPU maps page {i} to frame 0x{t.Frame:x} but the CPU page table holds {cpu} (a stale device mapping)");
        }
    }

    /// <summary>
    /// Final oracles, run after every thread finished: the GPU table agrees with the CPU, each
    /// mapped page reads its last write, invariants hold, and unload + exit give every VRAM and
    /// system page back.
    /// </summary>
    public void CheckAtEnd(ExploreContext ctx, bool checkContents = true)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ctx.AtEnd(() =>
        {
            CheckGpuTableAgreesWithCpu("at the end");
            if (checkContents)
            {
                for (int i = 0; i < UnmappedFrom; i++)
                {
                    ulong v = Process.Load<ulong>(Address(i));
                    ExploreContext.Check(v == Model[i], $"page {i} reads {v}, the last write was {Model[i]}");
                }
            }

            Machine.CheckInvariants();
            ExploreContext.Check(Svm.Unload() == Errno.Ok, "unload failed");
            ExploreContext.Check(Svm.VramPagesInUse == 0, $"{Svm.VramPagesInUse} VRAM pages still in use after unload");
            Process.Exit();
            Machine.CheckInvariants();
            ExploreContext.Check(Machine.UsedPages == _baseline, $"{Machine.UsedPages - _baseline} pages leaked");
        });
    }
}
