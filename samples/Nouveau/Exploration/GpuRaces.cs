using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Scheduling;

namespace Hmm.Samples.Nouveau.Exploration;

/// <summary>
/// The GPU race scenarios (drivers.md A, F.1.5/F.1.6 and C.6 as interleavings): the nouveau-like
/// DSL driver's fault-batch service, bind, eviction and atomics each racing the CPU side. Every
/// scenario also honours the scenario-level OOM reaper (non-blockable invalidations); the
/// in-line faults (allocation failure, seq EBUSY, fault-buffer overflow) come from the runtime.
/// Each body takes the driver to run so a test can plant a bug in its own declaration.
/// </summary>
public static class GpuRaces
{
    /// <summary>Every GPU scenario, in the order <c>hmmsim explore --list</c> prints them.</summary>
    public static IReadOnlyList<GpuRace> All { get; } =
    [
        new("gpu-fault-batch-munmap", "the GPU's fault-batch service (nouveau) races munmap of half the buffer", ctx => FaultBatchVsMunmap(ctx)),
        new("gpu-bind-cpu-touch", "SVM bind to VRAM races CPU loads and stores on the same pages", ctx => BindVsCpuTouch(ctx)),
        new("gpu-evict-fault", "eviction of VRAM back to system memory races GPU faults migrating it (UVM policy)", ctx => EvictionVsGpuFault(ctx)),
        new("gpu-atomic-cpu-read", "GPU atomics through device-exclusive entries race CPU reads and a CPU store", ctx => AtomicsVsCpuRead(ctx)),
    ];

    /// <summary>The scenario named <paramref name="name"/>, or null.</summary>
    public static GpuRace? Find(string name) => All.FirstOrDefault(s => s.Name == name);

    /// <summary>
    /// A GPU kernel writes every page (one thread per page; faults serviced in batches by the
    /// generated service) while the CPU unmaps the upper half. A thread whose fault was cancelled
    /// keeps the old value; the GPU must never keep a mapping of an unmapped page.
    /// </summary>
    public static void FaultBatchVsMunmap(ExploreContext ctx, Func<GpuUnderTest>? driver = null)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var w = new GpuWorld(ctx, driver);
        bool oom = SpawnOomReaper(ctx, w);
        const ulong value = 500;
        ctx.Spawn("gpu", () => Tolerate(oom, () =>
        {
            w.Run(GpuWorkloads.WriteEveryPage(w.Buffer, GpuWorld.Pages * Page.Size, value));
            var exec = w.Device.Executor;
            for (int i = 0; i < GpuWorld.Pages / 2; i++)
                if (exec.StateOf(i) == DeviceThreadState.Done) w.Model[i] = value;
        }));
        ctx.Spawn("munmap", () => Tolerate(oom, () =>
        {
            w.UnmappedFrom = GpuWorld.Pages / 2;
            w.Process.Munmap(w.Address(GpuWorld.Pages / 2), GpuWorld.Pages / 2 * Page.Size);
        }));
        w.CheckAtEnd(ctx, checkContents: !oom);
    }

    /// <summary>SVM_BIND of the buffer to VRAM while the CPU reads page 0 and writes page 1 (a CPU touch brings one page back).</summary>
    public static void BindVsCpuTouch(ExploreContext ctx, Func<GpuUnderTest>? driver = null)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var w = new GpuWorld(ctx, driver);
        bool oom = SpawnOomReaper(ctx, w);
        ctx.Spawn("bind", () => Tolerate(oom, () => w.Svm.Bind(w.Buffer, w.Address(GpuWorld.Pages))));
        ctx.Spawn("cpu", () => Tolerate(oom, () =>
        {
            ulong v = w.Process.Load<ulong>(w.Address(0));
            ExploreContext.Check(oom || v == w.Model[0], $"CPU load of page 0 read {v}, expected {w.Model[0]}");
            w.Process.Store(w.Address(1), 201UL);
            w.Model[1] = 201;
            v = w.Process.Load<ulong>(w.Address(1));
            ExploreContext.Check(oom || v == 201, $"CPU load of page 1 read {v} right after storing 201");
        }));
        w.CheckAtEnd(ctx, checkContents: !oom);
    }

    /// <summary>
    /// UVM policy: a GPU kernel reads every page (fault → migrate to VRAM) while the driver evicts
    /// the buffer back to system memory. Every GPU read must return the page's value.
    /// </summary>
    public static void EvictionVsGpuFault(ExploreContext ctx, Func<GpuUnderTest>? driver = null)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var w = new GpuWorld(ctx, driver, GpuPolicyMode.Uvm);
        bool oom = SpawnOomReaper(ctx, w);
        ctx.Spawn("gpu", () => Tolerate(oom, () =>
        {
            var run = w.Run(GpuWorkloads.ReadEveryPage(w.Buffer, GpuWorld.Pages * Page.Size));
            var exec = w.Device.Executor;
            for (int i = 0; i < GpuWorld.Pages && !oom; i++)
                if (exec.StateOf(i) == DeviceThreadState.Done)
                    ExploreContext.Check(exec.ResultOf(i) == w.Model[i], $"GPU read of page {i} returned {exec.ResultOf(i)}, expected {w.Model[i]}");
            ExploreContext.Check(oom || run.ThreadsFailed == 0, $"{run.ThreadsFailed} GPU threads were cancelled on mapped memory");
        }));
        ctx.Spawn("evict", () => Tolerate(oom, () => w.Svm.Evict(w.Buffer, w.Address(GpuWorld.Pages))));
        w.CheckAtEnd(ctx, checkContents: !oom);
    }

    /// <summary>
    /// GPU atomics (nouveau: device-exclusive entries, A.6) add 1 to page 0's and page 1's first
    /// words twice each while the CPU reads page 0 (revoking its exclusive entry) and stores to
    /// page 2. No increment may be lost and the CPU sees a value between the old and the final one.
    /// </summary>
    public static void AtomicsVsCpuRead(ExploreContext ctx, Func<GpuUnderTest>? driver = null)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var w = new GpuWorld(ctx, driver);
        bool oom = SpawnOomReaper(ctx, w);
        ulong first0 = w.Model[0];
        ctx.Spawn("gpu", () => Tolerate(oom, () =>
        {
            // Thread t adds 1 to the first word of page t mod 2.
            var kernel = new KernelDescription
            {
                Base = w.Buffer, Bytes = 2 * Page.Size, Threads = 4, Pattern = KernelPattern.Strided, StrideBytes = Page.Size,
                Access = DeviceAccess.Atomic, Value = 1,
            };
            w.Run(kernel);
            var exec = w.Device.Executor;
            for (int t = 0; t < kernel.Threads; t++)
                if (exec.StateOf(t) == DeviceThreadState.Done) w.Model[(int)(kernel.AddressOf(t) - w.Buffer) / Page.Size]++;
        }));
        ctx.Spawn("cpu", () => Tolerate(oom, () =>
        {
            ulong v = w.Process.Load<ulong>(w.Address(0));
            ExploreContext.Check(oom || (v >= first0 && v <= first0 + 2), $"CPU read {v} from page 0, between {first0} and {first0 + 2} expected");
            w.Process.Store(w.Address(2), 302UL);
            w.Model[2] = 302;
        }));
        w.CheckAtEnd(ctx, checkContents: !oom);
    }

    /// <summary>Spawns an OOM reaper when this schedule injects non-blockable invalidations; true when it runs (contents are then gone).</summary>
    private static bool SpawnOomReaper(ExploreContext ctx, GpuWorld w)
    {
        bool oom = ctx.Injects(FaultSite.NonBlockableInvalidate);
        if (oom) ctx.Spawn("oom-reaper", () => w.Process.OomKill());
        return oom;
    }

    private static void Tolerate(bool oom, Action body)
    {
        try
        {
            body();
        }
        catch (ErrnoException e) when (e.Errno == Errno.ENOMEM)
        {
            // An injected allocation failure in a CPU fault: VM_FAULT_OOM (the task would be killed).
        }
        catch (Exception e) when (oom && (e is SegmentationFault or BusError or ErrnoException || e is InvalidOperationException { Message: var m } && m.Contains("OOM", StringComparison.Ordinal)))
        {
            // The OOM reaper took the memory: the kernel would SIGSEGV/SIGBUS the task.
        }
    }
}
