using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Samples.Nouveau;

namespace Hmm.Samples.HmmSim.Demos.Gpu;

/// <summary>A demo on the nouveau-like GPU: builds a <see cref="GpuRig"/> in the chosen policy and runs <see cref="Body"/>.</summary>
public abstract class GpuDemo : Demo
{
    /// <inheritdoc/>
    public sealed override DemoResult Run(DemoParameters parameters, TimelineRecorder recorder)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var policy = parameters.Policy ?? DefaultPolicy;
        using var rig = new GpuRig(parameters.Pages, policy, recorder, UvmOptions(parameters));
        rig.Sample();
        var result = Body(rig, parameters);
        rig.Finish();
        return result;
    }

    /// <summary>The UVM options of this demo (the published defaults unless the workload needs another budget or lapse).</summary>
    protected virtual UvmPolicyOptions UvmOptions(DemoParameters parameters) => UvmPolicyOptions.Default;

    /// <summary>The workload; returns counters and simulated time taken before the epilogue (unload) runs.</summary>
    protected abstract DemoResult Body(GpuRig rig, DemoParameters parameters);
}

/// <summary>F.1.1: the GPU reads a CPU-filled buffer — one fault per page, GPU PTEs at system pages, no migration.</summary>
public sealed class FirstTouchDemo : GpuDemo
{
    /// <inheritdoc/>
    public override string Name => "first-touch";
    /// <inheritdoc/>
    public override string Description => "GPU reads a CPU-filled buffer: one fault per page, mirrored in place, zero migrations";
    /// <inheritdoc/>
    public override string Section => "F.1.1";
    /// <inheritdoc/>
    public override string Explanation =>
        "The CPU fills a buffer, then a GPU kernel reads the first word of every page. Each first access faults; the driver " +
        "drains the fault buffer, sorts and de-duplicates the batch, mirrors the CPU's pages with hmm_range_fault and replays " +
        "once per batch. The GPU page table points at system memory: nouveau never migrates on a fault.";
    /// <inheritdoc/>
    public override int DefaultPages => 16384; // 64 MiB, the F.1.1 figure

    /// <inheritdoc/>
    protected override DemoResult Body(GpuRig rig, DemoParameters parameters)
    {
        int pages = parameters.Pages;
        ulong buf = rig.Filled(pages, parameters.Seed);
        var run = rig.Run(GpuWorkloads.ReadEveryPage(buf, (ulong)pages * Page.Size));
        bool ok = run.Completed && run.ThreadsDone == pages;
        for (int i = 0; i < pages && ok; i++) ok = rig.Device.Executor.ResultOf(i) == GpuRig.Word(i, parameters.Seed);
        return new DemoResult(rig.Counters(("kernelFaults", run.FaultsRaised), ("vramChunks", rig.Gpu.DeviceChunkCount)), rig.Elapsed, ok);
    }
}

/// <summary>F.1.2: bind migrates 2 MiB chunks to VRAM and maps them; the kernel that follows takes no fault.</summary>
public sealed class BindDemo : GpuDemo
{
    /// <inheritdoc/>
    public override string Name => "bind";
    /// <inheritdoc/>
    public override string Description => "SVM bind migrates the buffer to VRAM in 2 MiB chunks; the following kernel takes no fault";
    /// <inheritdoc/>
    public override string Section => "F.1.2";
    /// <inheritdoc/>
    public override string Explanation =>
        "The CPU writes the lower half of a buffer and never touches the upper half. The bind ioctl (MIGRATE to VRAM) walks " +
        "the range in 2 MiB units: VRAM chunks are hot-added as needed, the copy engine copies populated pages and clears " +
        "never-touched ones, and the migration sets the GPU PTEs itself — so the kernel that reads every page takes no fault.";
    /// <inheritdoc/>
    public override int DefaultPages => 2048;
    /// <inheritdoc/>
    public override int MinPages => 2;

    /// <inheritdoc/>
    protected override DemoResult Body(GpuRig rig, DemoParameters parameters)
    {
        int pages = parameters.Pages;
        ulong seed = parameters.Seed;
        ulong buf = rig.Map(pages);
        for (int i = 0; i < pages / 2; i++) rig.Process.Store(buf + ((ulong)i * Page.Size), GpuRig.Word(i, seed));
        rig.Sample();
        long copied0 = rig.Device.Copy.PagesCopied;
        long bound = rig.Svm.Bind(buf, buf + ((ulong)pages * Page.Size));
        long copied = rig.Device.Copy.PagesCopied - copied0;
        rig.Sample();
        var run = rig.Run(GpuWorkloads.ReadEveryPage(buf, (ulong)pages * Page.Size));
        bool ok = run.Completed && run.ThreadsDone == pages;
        for (int i = 0; i < pages && ok; i++) ok = rig.Device.Executor.ResultOf(i) == (i < pages / 2 ? GpuRig.Word(i, seed) : 0UL);
        return new DemoResult(rig.Counters(("kernelFaults", run.FaultsRaised), ("boundPages", bound), ("copyEnginePages", copied),
                                           ("vramChunks", rig.Gpu.DeviceChunkCount), ("vramPagesInUse", rig.Svm.VramPagesInUse)), rig.Elapsed, ok);
    }
}

/// <summary>F.1.3: after bind, CPU touches pull single pages back; the GPU then maps them in system memory.</summary>
public sealed class CpuTouchDemo : GpuDemo
{
    /// <inheritdoc/>
    public override string Name => "cpu-touch";
    /// <inheritdoc/>
    public override string Description => "CPU reads every 16th page after bind: one-page migrate_to_ram each, no re-migration";
    /// <inheritdoc/>
    public override string Section => "F.1.3";
    /// <inheritdoc/>
    public override string Explanation =>
        "After a bind put the buffer in VRAM, the CPU reads every 16th page. Each read faults on a device-private entry and " +
        "migrate_to_ram brings back exactly that page, clearing its GPU PTE. When the GPU reads the buffer again only those " +
        "pages fault, and they are mapped in system memory: nouveau has no policy that migrates them back.";
    /// <inheritdoc/>
    public override int DefaultPages => 1024;
    /// <inheritdoc/>
    public override int MinPages => 16;

    /// <inheritdoc/>
    protected override DemoResult Body(GpuRig rig, DemoParameters parameters)
    {
        int pages = parameters.Pages;
        ulong seed = parameters.Seed;
        ulong buf = rig.Filled(pages, seed);
        rig.Svm.Bind(buf, buf + ((ulong)pages * Page.Size));
        rig.Sample();
        bool ok = true;
        int touched = 0;
        for (int i = 0; i < pages; i += 16, touched++)
            ok &= rig.Process.Load<ulong>(buf + ((ulong)i * Page.Size)) == GpuRig.Word(i, seed);
        rig.Sample();
        var run = rig.Run(GpuWorkloads.ReadEveryPage(buf, (ulong)pages * Page.Size));
        ok &= run.Completed && run.ThreadsDone == pages;
        for (int i = 0; i < pages && ok; i++) ok = rig.Device.Executor.ResultOf(i) == GpuRig.Word(i, seed);
        return new DemoResult(rig.Counters(("cpuTouches", touched), ("kernelFaults", run.FaultsRaised)), rig.Elapsed, ok);
    }
}

/// <summary>F.1.5: munmap while the GPU streams — PFNCLR reaches the mirror, faults on the unmapped part are cancelled.</summary>
public sealed class InvalidationRaceDemo : GpuDemo
{
    /// <inheritdoc/>
    public override string Name => "invalidation-race";
    /// <inheritdoc/>
    public override string Description => "munmap while GPU faults are pending: notifier clears GPU PTEs, faults on the hole are cancelled";
    /// <inheritdoc/>
    public override string Section => "F.1.5";
    /// <inheritdoc/>
    public override string Explanation =>
        "The GPU has mirrored the first quarter of a buffer and launches one thread per page; the unmirrored pages fault. " +
        "Before the driver services them, the application munmaps the upper half and the first eighth. The interval " +
        "notifier clears the GPU PTEs of the mirrored pages (PFNCLR); the pending faults on the unmapped part fail " +
        "hmm_range_fault and are cancelled (their threads' channel is killed); every other thread completes.";
    /// <inheritdoc/>
    public override int DefaultPages => 1024;
    /// <inheritdoc/>
    public override int MinPages => 32;
    /// <inheritdoc/>
    public override int MaxPages => 1 << 14;

    /// <inheritdoc/>
    protected override string? CheckMore(DemoParameters parameters)
        => parameters.Pages % 16 == 0 ? null : $"--pages {parameters.Pages}: '{Name}' needs a multiple of 16";

    /// <inheritdoc/>
    protected override DemoResult Body(GpuRig rig, DemoParameters parameters)
    {
        int pages = parameters.Pages, quarter = pages / 4, gapLo = (pages / 2) - (pages / 16), gapHi = (pages / 2) + (pages / 16);
        ulong seed = parameters.Seed;
        ulong buf = rig.Filled(pages, seed);
        rig.Run(GpuWorkloads.ReadEveryPage(buf, (ulong)quarter * Page.Size));
        long invalidations0 = rig.Gpu.Invalidations;
        // The gap keeps the mapped and unmapped faulting pages from coalescing into one serviced range.
        var touched = new List<int>();
        for (int i = 0; i < pages; i++) if (i < gapLo || i >= gapHi) touched.Add(i);
        var ops = new DeviceOp[touched.Count];
        for (int t = 0; t < ops.Length; t++) ops[t] = new DeviceOp(buf + ((ulong)touched[t] * Page.Size), DeviceAccess.Read);
        rig.Device.Executor.LaunchOnePerThread(rig.Gpu.Instance, 0, ops);
        int faulted = rig.Device.Run();
        rig.Sample();
        rig.Process.Munmap(buf + ((ulong)(pages / 2) * Page.Size), (ulong)(pages / 2) * Page.Size);
        rig.Process.Munmap(buf, (ulong)(pages / 8) * Page.Size);
        bool cleared = !rig.Gpu.DeviceTable.Lookup(buf, out _);
        rig.Sample();
        for (int pass = 0; pass < 2; pass++)
        {
            rig.Svm.ServiceAll();
            rig.Device.Run();
            rig.Sample();
        }
        bool ok = cleared;
        int failed = 0;
        for (int t = 0; t < touched.Count; t++)
        {
            var state = rig.Device.Executor.StateOf(t);
            bool hole = touched[t] >= gapHi;
            if (state == DeviceThreadState.Failed) failed++;
            ok &= hole ? state == DeviceThreadState.Failed
                       : state == DeviceThreadState.Done && rig.Device.Executor.ResultOf(t) == GpuRig.Word(touched[t], seed);
        }
        return new DemoResult(rig.Counters(("faultingThreads", faulted), ("threadsFailed", failed),
                                           ("notifierInvalidations", rig.Gpu.Invalidations - invalidations0)), rig.Elapsed, ok);
    }
}

/// <summary>F.1.6: GPU atomics on malloc memory through device-exclusive entries, revoked by a CPU read.</summary>
public sealed class AtomicsDemo : GpuDemo
{
    private const int ThreadsPerCounter = 10;

    /// <inheritdoc/>
    public override string Name => "atomics";
    /// <inheritdoc/>
    public override string Description => "GPU atomics on system memory: device-exclusive entries, revoked by a CPU read, re-faulted";
    /// <inheritdoc/>
    public override string Section => "F.1.6";
    /// <inheritdoc/>
    public override string Explanation =>
        "GPU threads atomically increment 8-byte counters in ordinary anonymous memory. The driver makes the pages " +
        "device-exclusive (make_device_exclusive) so the GPU may do atomics on system memory. A CPU read of one counter " +
        "revokes that page's exclusive entry (the GPU PTE is cleared); when the kernel runs again only that page's " +
        "threads re-fault. Every counter ends exactly at twice the threads per counter.";
    /// <inheritdoc/>
    public override int DefaultPages => 2;
    /// <inheritdoc/>
    public override int MaxPages => 64;

    /// <inheritdoc/>
    protected override DemoResult Body(GpuRig rig, DemoParameters parameters)
    {
        int pages = parameters.Pages, counters = pages * Page.Size / 8, threads = counters * ThreadsPerCounter;
        ulong buf = rig.Map(pages);
        var kernel = GpuWorkloads.AtomicCounters(buf, counters, threads);
        var first = rig.Run(kernel);
        long exclusive = rig.Gpu.PagesExclusive;
        bool ok = first.Completed && first.ThreadsDone == threads;
        ok &= rig.Process.Load<ulong>(buf + 8) == ThreadsPerCounter; // revokes page 0
        rig.Sample();
        var second = rig.Run(kernel);
        ok &= second.Completed && second.ThreadsDone == threads;
        for (int i = 0; i < counters && ok; i++) ok = rig.Process.Load<ulong>(buf + ((ulong)i * 8)) == 2 * ThreadsPerCounter;
        return new DemoResult(rig.Counters(("threads", threads), ("pagesExclusive", exclusive), ("firstKernelFaults", first.FaultsRaised),
                                           ("secondKernelFaults", second.FaultsRaised)), rig.Elapsed, ok);
    }
}

/// <summary>F.1.7: ten thousand GPU threads fault on a handful of pages at once.</summary>
public sealed class FaultStormDemo : GpuDemo
{
    private const int Threads = 10_000;

    /// <inheritdoc/>
    public override string Name => "fault-storm";
    /// <inheritdoc/>
    public override string Description => "10 000 GPU threads fault on 16 pages: the ring overflows, 16 pages serviced, one replay";
    /// <inheritdoc/>
    public override string Section => "F.1.7";
    /// <inheritdoc/>
    public override string Explanation =>
        "Ten thousand threads read the same few pages. The 4096-entry fault buffer overflows (dropped faults are not lost: " +
        "the threads stay stalled until the replay), one batch is fetched, sorted and de-duplicated down to the distinct " +
        "pages, which are serviced once each, and a single replay resumes every thread.";
    /// <inheritdoc/>
    public override int DefaultPages => 16;
    /// <inheritdoc/>
    public override int MaxPages => 1024;

    /// <inheritdoc/>
    protected override DemoResult Body(GpuRig rig, DemoParameters parameters)
    {
        int pages = parameters.Pages;
        ulong buf = rig.Filled(pages, parameters.Seed);
        var run = rig.Run(GpuWorkloads.FaultStorm(buf, pages, Threads));
        bool ok = run.Completed && run.ThreadsDone == Threads;
        for (int t = 0; t < Threads && ok; t++) ok = rig.Device.Executor.ResultOf(t) == GpuRig.Word(t % pages, parameters.Seed);
        return new DemoResult(rig.Counters(("threads", Threads), ("kernelFaults", run.FaultsRaised), ("ringOverflows", rig.Device.Faults.Overflows)),
                              rig.Elapsed, ok);
    }
}

/// <summary>F.1.8: driver unload with data in VRAM — every chunk evicted back to RAM, data intact.</summary>
public sealed class UnloadDemo : GpuDemo
{
    /// <inheritdoc/>
    public override string Name => "unload";
    /// <inheritdoc/>
    public override string Description => "driver unload with pages in VRAM: every chunk evicted to RAM, data intact";
    /// <inheritdoc/>
    public override string Section => "F.1.8";
    /// <inheritdoc/>
    public override string Explanation =>
        "A buffer is bound to VRAM and the GPU overwrites a quarter of it. Unloading the driver (nouveau_dmem_fini) evicts " +
        "every VRAM page back to system memory with its data, removes the chunks and detaches the mirror; the CPU then " +
        "reads every page and finds exactly what the CPU or the GPU last wrote.";
    /// <inheritdoc/>
    public override int DefaultPages => 1024;
    /// <inheritdoc/>
    public override int MinPages => 4;

    /// <inheritdoc/>
    protected override DemoResult Body(GpuRig rig, DemoParameters parameters)
    {
        int pages = parameters.Pages, lo = pages / 2, hi = lo + (pages / 4);
        ulong seed = parameters.Seed;
        const ulong Gpu = 0xFEED;
        ulong buf = rig.Filled(pages, seed);
        rig.Svm.Bind(buf, buf + ((ulong)pages * Page.Size));
        rig.Sample();
        rig.Run(GpuWorkloads.WriteEveryPage(buf + ((ulong)lo * Page.Size), (ulong)(hi - lo) * Page.Size, Gpu));
        long inVram = rig.Svm.VramPagesInUse;
        var e = rig.Svm.Unload();
        rig.Sample();
        bool ok = e == Errno.Ok && rig.Gpu.DeviceChunkCount == 0;
        for (int i = 0; i < pages && ok; i++)
            ok = rig.Process.Load<ulong>(buf + ((ulong)i * Page.Size)) == (i >= lo && i < hi ? Gpu : GpuRig.Word(i, seed));
        return new DemoResult(rig.Counters(("vramPagesBeforeUnload", inVram), ("vramChunksAfterUnload", rig.Gpu.DeviceChunkCount)), rig.Elapsed, ok);
    }
}
