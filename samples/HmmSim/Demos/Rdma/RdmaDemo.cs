using Hmm.Samples.Mlx5;

namespace Hmm.Samples.HmmSim.Demos.Rdma;

/// <summary>
/// A demo on the mlx5-like ODP NIC (drivers.md F.2 / F.4): a thin wrapper over one entry of the
/// sample's <see cref="OdpWorkloads"/> / <see cref="P2pWorkloads"/>, which builds its own two-NIC
/// testbed, verifies every byte and returns the MR's B.10 counters. The workload runs as one step,
/// so its timeline is its start and end (no residency frames: the report says so instead of drawing).
/// </summary>
public sealed class RdmaDemo(string name, string section, string description, string explanation, int defaultPages, int minPages, int maxPages,
                             Func<int, int, Mlx5WorkloadResult> workload) : Demo
{
    /// <inheritdoc/>
    public override string Name => name;
    /// <inheritdoc/>
    public override string Description => description;
    /// <inheritdoc/>
    public override string Explanation => explanation;
    /// <inheritdoc/>
    public override string Section => section;
    /// <inheritdoc/>
    public override int DefaultPages => defaultPages;
    /// <inheritdoc/>
    public override int MinPages => minPages;
    /// <inheritdoc/>
    public override int MaxPages => maxPages;
    /// <inheritdoc/>
    public override bool HasPolicy => false;

    /// <inheritdoc/>
    protected override string? CheckMore(DemoParameters parameters)
        => parameters.Seed <= int.MaxValue ? null : $"--seed {parameters.Seed}: '{Name}' takes a seed of at most {int.MaxValue}";

    /// <inheritdoc/>
    public override DemoResult Run(DemoParameters parameters, TimelineRecorder recorder)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(recorder);
        var r = workload(parameters.Pages, (int)parameters.Seed);
        var counters = new List<KeyValuePair<string, long>>(r.Counters.Count + 3);
        counters.AddRange(r.Counters);
        counters.Add(new("p2pBytes", r.P2pBytes));
        counters.Add(new("fallbackBytes", r.FallbackBytes));
        counters.Add(new("migrations", r.Migrations));
        r.Counters.TryGetValue("page_faults", out long faults);
        recorder.Add(new TimelinePoint(0, 0, 0, 0, 0, 0, 0));
        recorder.Add(new TimelinePoint(r.SimulatedTimeNs, faults, 0, r.Migrations, 0, r.P2pBytes, r.FallbackBytes));
        return new DemoResult(counters, r.SimulatedTimeNs, r.DataVerified);
    }

    /// <summary>The F.2 / F.4 demos, in tour order.</summary>
    public static IReadOnlyList<Demo> All { get; } =
    [
        new RdmaDemo("odp-rdma-write", "F.2.1", "remote RDMA WRITE into an unpinned ODP MR: responder faults, 4 MiB prefetch window",
            "The server registers a buffer four times the transfer without pinning it; the client RDMA-WRITEs into it. The first " +
            "packet faults on the responder (an ODP page fault on the NIC), the driver maps the pages with hmm_range_fault and " +
            "resumes, and the post-resume prefetch maps a 4 MiB window ahead, so the rest of the transfer runs without faults.",
            64, 1, 4096, OdpWorkloads.RdmaWrite),
        new RdmaDemo("odp-implicit", "F.2.2", "implicit ODP over the whole address space: lazy child MRs, KSM updates, a child reaped",
            "The server registers its whole address space as one implicit ODP MR. Writes into three different 1 GiB slots each " +
            "hit the null mkey first; the driver creates a child MR for the slot lazily and rewrites its KSM entry. When one " +
            "buffer is unmapped, its child is emptied by the invalidation and reaped.",
            64, 1, 4096, OdpWorkloads.ImplicitOdp),
        new RdmaDemo("odp-invalidation", "F.2.3", "madvise(DONTNEED) and munmap under an ODP MR: 8-aligned zaps, dirty pages, re-faults",
            "After a first transfer the server drops single pages and a 16-page range with madvise(DONTNEED) and unmaps the tail. " +
            "The MMU notifier zaps the MTT in 8-aligned runs, marks the NIC-written pages dirty, and the next transfer re-faults " +
            "exactly those pages; a write into the unmapped tail fails with EFAULT.",
            64, 32, 4096, OdpWorkloads.Invalidation),
        new RdmaDemo("odp-prefetch", "F.2.4", "advise_mr PREFETCH vs PREFETCH_WRITE vs NO_FAULT: faults and first-transfer time",
            "Three untouched regions get different advice before a transfer. PREFETCH maps them read-only, so the RDMA WRITE " +
            "faults again to upgrade; PREFETCH_WRITE maps them writable and the transfer takes no fault; NO_FAULT maps only the " +
            "half the CPU had touched. Compare write_faults_after_advice and first_transfer_ns per region.",
            64, 2, 4096, OdpWorkloads.Prefetch),
        new RdmaDemo("rdma-into-gpu-fallback", "F.4.1", "RDMA WRITE into a GPU-resident buffer without p2p: every page migrates to RAM",
            "A buffer is bound to the GPU's VRAM, then the NIC RDMA-WRITEs into it through an ODP MR. Without peer-to-peer, each " +
            "NIC fault makes hmm_range_fault migrate the touched pages back to RAM (the GPU's PTEs are cleared), so all bytes go " +
            "through system memory, and the GPU faults again when it reads the buffer.",
            64, 1, 4096, P2pWorkloads.RdmaIntoGpuFallback),
        new RdmaDemo("rdma-into-gpu-p2p", "F.4.2", "RDMA WRITE into GPU memory through the BAR (p2p); one unexportable page falls back",
            "The same transfer with peer-to-peer enabled: the GPU exports its VRAM through BAR1 and the NIC's MTT points at the " +
            "BAR, so the data lands in VRAM with no migration and the GPU reads it without faulting. One page the GPU refuses " +
            "to export falls back to migrate-to-RAM, page by page, in the same transfer.",
            64, 2, 4096, P2pWorkloads.RdmaIntoGpuP2p),
        new RdmaDemo("p2p-revocation", "F.4.2", "the GPU evicts / the CPU touches VRAM the NIC maps p2p: entries revoked, re-faulted into RAM",
            "After a p2p transfer into VRAM, the GPU evicts the first half of the buffer and the CPU touches one page of the " +
            "second half (migrate_to_ram). Both invalidate the NIC's BAR entries for those pages; the next transfer re-faults " +
            "the revoked pages and maps them in RAM, while the rest stays peer-to-peer.",
            64, 4, 4096, P2pWorkloads.P2pRevocation),
        new RdmaDemo("two-gpus", "F.4.4", "GPU B reads pages private to GPU A: hmm_range_fault migrates them to RAM (another owner)",
            "GPU A binds a buffer to its VRAM; GPU B's kernel then reads it. The pages are device-private to another pgmap " +
            "owner, so GPU B's faults make hmm_range_fault migrate them back to system memory before B maps them.",
            64, 1, 4096, P2pWorkloads.TwoGpus),
        new RdmaDemo("two-gpus-same-hive", "F.4.4", "two GPUs sharing one pgmap owner (a hive): B maps A's VRAM in place, a CPU touch unmaps it from both",
            "The AMD-style variant: both GPUs use one hive object as pgmap owner. GPU B's faults on pages A bound to its VRAM get " +
            "A's device-private pfns back (same owner: no migration) and B maps them as peer-VRAM PTEs at A's BAR1 addresses; " +
            "B's writes land in A's VRAM. A CPU touch migrates one page to RAM and A also unmaps it from B (the trampolines " +
            "skip events owned by the shared cookie), so B re-faults on exactly that page.",
            64, 2, 4096, P2pWorkloads.TwoGpusSameHive),
    ];
}
