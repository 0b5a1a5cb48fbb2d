using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.Nouveau;

namespace Hmm.Samples.HmmSim.Demos.Gpu;

/// <summary>
/// F.1.4 against F.3.1: the CPU and the GPU take turns writing the same pages. Under nouveau's rule
/// the application must bind each round (nouveau never migrates on a GPU fault), so every round
/// moves every page both ways. Under the UVM-style policy the GPU's faults migrate by themselves,
/// the thrashing detector sees the pages bounce, throttles and finally pins them in system memory
/// with a remote GPU mapping — and migrations stop.
/// </summary>
public sealed class PingPongDemo(GpuPolicyMode policy) : GpuDemo
{
    private const int Rounds = 24;
    private const long RoundGapNs = 100_000;

    /// <inheritdoc/>
    public override string Name => policy == GpuPolicyMode.Uvm ? "ping-pong-uvm" : "ping-pong";
    /// <inheritdoc/>
    public override string Description => policy == GpuPolicyMode.Uvm
        ? "CPU/GPU ping-pong under the UVM policy: thrashing detected, pages pinned, migrations stop"
        : "CPU/GPU ping-pong under nouveau: bind + CPU write each round, every page migrates both ways";
    /// <inheritdoc/>
    public override string Section => policy == GpuPolicyMode.Uvm ? "F.3.1 (vs F.1.4)" : "F.1.4";
    /// <inheritdoc/>
    public override string Explanation => policy == GpuPolicyMode.Uvm
        ? "The same ping-pong with the UVM-style policy: GPU faults migrate the pages to VRAM and the CPU's writes pull them " +
          "back, until the thrashing detector sees three migrations of a page within the lapse. It throttles the GPU, then " +
          "pins the pages in system memory and maps them remotely: from then on neither side migrates anything."
        : "Each round the application binds the buffer to VRAM (nouveau only migrates on bind), the GPU writes every page, " +
          "and the CPU reads and writes one word per page: every touch is a one-page migrate_to_ram. Nothing stops the " +
          "bouncing, so migrations and simulated time grow linearly with pages × rounds.";
    /// <inheritdoc/>
    public override int DefaultPages => 8;
    /// <inheritdoc/>
    public override int MaxPages => 4096;
    /// <inheritdoc/>
    public override GpuPolicyMode DefaultPolicy => policy;

    /// <inheritdoc/>
    protected override UvmPolicyOptions UvmOptions(DemoParameters parameters)
        // One round of p pages takes the launch, a batch and p fault services of simulated time;
        // the lapse is scaled to the round so the detector can see a page bounce however large
        // the buffer is (with the published 500 µs only rounds of one or two pages qualify).
        => UvmPolicyOptions.Default with { ThrashingLapseNs = Math.Max(UvmPolicyOptions.Default.ThrashingLapseNs, 400_000L + (parameters.Pages * 150_000L)) };

    /// <inheritdoc/>
    protected override DemoResult Body(GpuRig rig, DemoParameters parameters)
    {
        int pages = parameters.Pages;
        ulong buf = rig.Filled(pages, parameters.Seed);
        ulong bytes = (ulong)pages * Page.Size;
        bool uvm = rig.Svm.Policy.Mode == GpuPolicyMode.Uvm;
        bool ok = true;
        long[] perRound = new long[Rounds];
        for (int r = 1; r <= Rounds; r++)
        {
            var before = rig.Svm.Snapshot();
            if (!uvm) rig.Svm.Bind(buf, buf + bytes);
            var run = rig.Run(GpuWorkloads.WriteEveryPage(buf, bytes, (ulong)r));
            ok &= run.Completed && run.ThreadsDone == pages;
            for (int i = 0; i < pages; i++)
            {
                ulong va = buf + ((ulong)i * Page.Size);
                ok &= rig.Process.Load<ulong>(va) == (ulong)r;
                rig.Process.Store(va + 8, (ulong)r);
            }
            rig.Device.Clock.Advance(RoundGapNs);
            rig.Sample();
            var after = rig.Svm.Snapshot();
            perRound[r - 1] = after.PagesToVram + after.PagesFromVram - before.PagesToVram - before.PagesFromVram;
        }
        for (int i = 0; i < pages; i++) ok &= rig.Process.Load<ulong>(buf + ((ulong)i * Page.Size) + 8) == Rounds;
        var c = rig.Svm.Snapshot();
        return new DemoResult(rig.Counters(("rounds", Rounds), ("migrations", c.PagesToVram + c.PagesFromVram),
                                           ("migrationsFirstRound", perRound[0]), ("migrationsLastRound", perRound[^1])), rig.Elapsed, ok);
    }
}

/// <summary>F.3.1 in full: detection, throttling, pinning with remote mapping, unpin after 150 ms, reset after 1 s of quiet.</summary>
public sealed class ThrashingDemo : GpuDemo
{
    private const long Us = 1_000, Ms = 1_000_000;

    /// <inheritdoc/>
    public override string Name => "thrashing";
    /// <inheritdoc/>
    public override string Description => "UVM thrashing lifecycle: detect, throttle, pin + remote map, unpin after 150 ms, reset after 1 s";
    /// <inheritdoc/>
    public override string Section => "F.3.1";
    /// <inheritdoc/>
    public override string Explanation =>
        "The CPU and the GPU alternately write the same two pages every 100 µs with UVM's published parameters. Three " +
        "migrations within 500 µs mark a page as thrashing; the GPU is throttled for a while, and after ten throttling " +
        "periods the page is pinned in system memory and mapped remotely, so nothing migrates. 150 ms later the pin " +
        "expires and the next GPU access migrates again; after 1 s of quiet the block's thrashing state is reset.";
    /// <inheritdoc/>
    public override int DefaultPages => 2;
    /// <inheritdoc/>
    public override int MaxPages => 8;
    /// <inheritdoc/>
    public override GpuPolicyMode DefaultPolicy => GpuPolicyMode.Uvm;

    /// <inheritdoc/>
    protected override DemoResult Body(GpuRig rig, DemoParameters parameters)
    {
        int pages = parameters.Pages;
        ulong buf = rig.Filled(pages, parameters.Seed);
        var gpuWrite = GpuWorkloads.WriteEveryPage(buf, (ulong)pages * Page.Size, 0);
        int round = 0;
        bool ok = true;
        void PingPong()
        {
            round++;
            var run = rig.Run(gpuWrite with { Value = (ulong)round });
            ok &= run.Completed && run.ThreadsDone == pages;
            for (int i = 0; i < pages; i++)
            {
                ok &= rig.Process.Load<ulong>(buf + ((ulong)i * Page.Size)) == (ulong)round;
                rig.Process.Store(buf + ((ulong)i * Page.Size) + 8, (ulong)round);
            }
            rig.Device.Clock.Advance(100 * Us);
            rig.Sample();
        }

        PingPong();
        PingPong();
        while (rig.Svm.Counters.Pins < pages && round < 40) PingPong();
        long pinnedAtRound = round;
        var pinned = rig.Svm.Snapshot();
        for (int r = 0; r < 6; r++) PingPong();
        var afterPinned = rig.Svm.Snapshot();
        long migrationsWhilePinned = afterPinned.PagesToVram + afterPinned.PagesFromVram - pinned.PagesToVram - pinned.PagesFromVram;
        rig.Device.Clock.Advance(150 * Ms);
        var again = rig.Run(gpuWrite with { Value = 777 });
        ok &= again.Completed;
        rig.Device.Clock.Advance(1000 * Ms);
        PingPong();
        ok &= rig.Process.Load<ulong>(buf + 8) == (ulong)round;
        return new DemoResult(rig.Counters(("rounds", round), ("pinnedAtRound", pinnedAtRound), ("migrationsWhilePinned", migrationsWhilePinned)),
                              rig.Elapsed, ok);
    }
}

/// <summary>F.3.2: the GPU touches 1 of every k pages of a 2 MiB block; the density prefetcher migrates the whole block.</summary>
public sealed class PrefetchDensityDemo : GpuDemo
{
    /// <inheritdoc/>
    public override string Name => "prefetch-density";
    /// <inheritdoc/>
    public override string Description => "GPU touches 1 of every k pages (k = 1, 2, 4, 8) of a 2 MiB block: the prefetcher migrates all of it";
    /// <inheritdoc/>
    public override string Section => "F.3.2";
    /// <inheritdoc/>
    public override string Explanation =>
        "Under the UVM-style policy, each 2 MiB block is touched sparsely: 1 of every k pages, k doubling from block to " +
        "block. The tree-based density prefetcher grows each fault to 64 KiB big pages and migrates any subtree more than " +
        "51 % resident, so even the sparsest block ends up wholly in VRAM. Compare migratedKn (pages in VRAM) with " +
        "touchedKn (pages the kernel faulted on). Under nouveau nothing migrates at all.";
    /// <inheritdoc/>
    public override int DefaultPages => 4 * Page.PmdPages;
    /// <inheritdoc/>
    public override int MinPages => Page.PmdPages;
    /// <inheritdoc/>
    public override int MaxPages => 10 * Page.PmdPages;
    /// <inheritdoc/>
    public override GpuPolicyMode DefaultPolicy => GpuPolicyMode.Uvm;

    /// <inheritdoc/>
    protected override string? CheckMore(DemoParameters parameters)
        => parameters.Pages % Page.PmdPages == 0 ? null : $"--pages {parameters.Pages}: '{Name}' needs whole 2 MiB blocks (a multiple of {Page.PmdPages})";

    /// <inheritdoc/>
    protected override DemoResult Body(GpuRig rig, DemoParameters parameters)
    {
        int blocks = parameters.Pages / Page.PmdPages;
        ulong buf = rig.Filled(parameters.Pages + Page.PmdPages, parameters.Seed);
        ulong first = (buf + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        int firstPage = (int)((first - buf) / Page.Size);
        bool ok = true;
        var extra = new List<(string, long)>();
        for (int b = 0; b < blocks; b++)
        {
            int k = 1 << b;
            ulong block = first + ((ulong)b * Page.PmdSize);
            var run = rig.Run(GpuWorkloads.PrefetchDensity(block, k));
            int touched = Page.PmdPages / k;
            ok &= run.Completed && run.ThreadsDone == touched;
            for (int j = 0; j < touched && ok; j++)
                ok = rig.Device.Executor.ResultOf(j) == GpuRig.Word(firstPage + (b * Page.PmdPages) + (j * k), parameters.Seed);
            int inVram = 0;
            for (int p = 0; p < Page.PmdPages; p++)
                if (rig.Process.Mm.EntryAt(block + ((ulong)p * Page.Size)).Kind == PteKind.DevicePrivate) inVram++;
            extra.Add(($"touchedK{k}", touched));
            extra.Add(($"migratedK{k}", inVram));
        }
        return new DemoResult(rig.Counters([.. extra]), rig.Elapsed, ok);
    }
}

/// <summary>F.3.4: a working set 1.5× the VRAM budget, walked sequentially then at random: LRU eviction of 2 MiB blocks, no data lost.</summary>
public sealed class OversubscriptionDemo : GpuDemo
{
    /// <inheritdoc/>
    public override string Name => "oversubscription";
    /// <inheritdoc/>
    public override string Description => "working set 1.5x the VRAM budget: 2 MiB LRU evictions (not thrashing), no data lost";
    /// <inheritdoc/>
    public override string Section => "F.3.4";
    /// <inheritdoc/>
    public override string Explanation =>
        "Under the UVM-style policy the VRAM budget is two thirds of the working set. The GPU writes every page in order, " +
        "twice, then issues random writes. Each fault migrates its block; when the budget is full the least recently used " +
        "2 MiB block is evicted to system memory. Evictions are not counted as thrashing, VRAM never exceeds the budget, " +
        "and the CPU finally checks every word against a reference model.";
    /// <inheritdoc/>
    public override int DefaultPages => 6 * Page.PmdPages;
    /// <inheritdoc/>
    public override int MinPages => 3 * Page.PmdPages;
    /// <inheritdoc/>
    public override int MaxPages => 48 * Page.PmdPages;
    /// <inheritdoc/>
    public override GpuPolicyMode DefaultPolicy => GpuPolicyMode.Uvm;

    private static int BudgetChunks(int pages) => Math.Max(1, pages * 2 / 3 / Page.PmdPages);

    /// <inheritdoc/>
    protected override UvmPolicyOptions UvmOptions(DemoParameters parameters)
        => UvmPolicyOptions.Default with { VramChunks = BudgetChunks(parameters.Pages) };

    /// <inheritdoc/>
    protected override DemoResult Body(GpuRig rig, DemoParameters parameters)
    {
        int pages = parameters.Pages;
        ulong bytes = (ulong)pages * Page.Size;
        ulong buf = rig.Filled(pages, parameters.Seed);
        var model = new Dictionary<ulong, ulong>();
        for (int i = 0; i < pages; i++) model[buf + ((ulong)i * Page.Size)] = GpuRig.Word(i, parameters.Seed);
        bool ok = true;
        long budget = (long)BudgetChunks(pages) * Page.PmdPages, peak = 0;
        var kernels = new[]
        {
            GpuWorkloads.OversubscribedSequential(buf, bytes, 0xA001),
            GpuWorkloads.OversubscribedSequential(buf, bytes, 0xA002),
            GpuWorkloads.OversubscribedRandom(buf, bytes, pages * 3, 0xB001, seed: parameters.Seed + 11),
        };
        foreach (var kernel in kernels)
        {
            var run = rig.Run(kernel);
            ok &= run.Completed && run.ThreadsFailed == 0;
            kernel.ApplyTo(model, _ => true);
            peak = Math.Max(peak, rig.Svm.VramPagesInUse);
        }
        ok &= peak <= budget;
        var bytesRead = new byte[bytes];
        rig.Process.Read(buf, bytesRead);
        for (int w = 0; w < bytesRead.Length / 8 && ok; w++)
        {
            model.TryGetValue(buf + ((ulong)w * 8), out ulong expected);
            ok = BitConverter.ToUInt64(bytesRead, w * 8) == expected;
        }
        return new DemoResult(rig.Counters(("vramBudgetPages", budget), ("vramPeakPages", peak)), rig.Elapsed, ok);
    }
}
