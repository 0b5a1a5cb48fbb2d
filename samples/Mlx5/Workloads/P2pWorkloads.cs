using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Samples.Nouveau;

namespace Hmm.Samples.Mlx5;

/// <summary>How <see cref="P2pWorkloads.RdmaIntoGpu"/> sets the GPU and the NIC up.</summary>
public sealed record GpuRdmaOptions
{
    /// <summary>The GPU exports VRAM through BAR1 and the NIC asks for p2p (false: mainline, migrate-back).</summary>
    public bool PeerToPeer { get; init; } = true;

    /// <summary>The PCI path between GPU and NIC.</summary>
    public PeerPath Path { get; init; } = PeerPath.SameSwitch;

    /// <summary>Pages whose export the GPU refuses (chosen by the seed): they fall back to migrate-to-RAM, page by page.</summary>
    public int UnreachablePages { get; init; }
}

/// <summary>
/// The cross-device demos of drivers.md F.4: RDMA from the client into a server buffer the nouveau-like
/// GPU bound to its VRAM — through the migrate-to-RAM fallback (mainline), or peer-to-peer through the
/// GPU's BAR1 with per-page fallback — the GPU reading what the NIC wrote, the exporter revoking the
/// NIC's p2p entries, and two GPUs.
/// </summary>
public static class P2pWorkloads
{
    /// <summary>F.4.1 + F.4.3 — the mainline baseline: every page the NIC faults on migrates to RAM; the GPU then faults to read it.</summary>
    public static Mlx5WorkloadResult RdmaIntoGpuFallback(int pages, int seed)
        => RdmaIntoGpu(pages, seed, new GpuRdmaOptions { PeerToPeer = false });

    /// <summary>
    /// F.4.2 + F.4.3 — p2p: MTT entries point at the GPU's BAR1, the NIC writes VRAM, nothing
    /// migrates, and the GPU reads without faulting; one page the GPU refuses to export falls back to
    /// migrate-to-RAM in the same transfer.
    /// </summary>
    public static Mlx5WorkloadResult RdmaIntoGpuP2p(int pages, int seed)
        => RdmaIntoGpu(pages, seed, new GpuRdmaOptions { PeerToPeer = true, UnreachablePages = 1 });

    /// <summary>
    /// RDMA WRITE of <paramref name="pages"/> pages into a server buffer first bound to GPU VRAM, as
    /// <paramref name="options"/> says; then the GPU reads every page (its faults counted), and the CPU
    /// reads everything back. P2pBytes/FallbackBytes are the bytes the NIC's MTT reached through the BAR /
    /// through RAM; Migrations the pages migrated to RAM before the CPU's final read.
    /// </summary>
    public static Mlx5WorkloadResult RdmaIntoGpu(int pages, int seed, GpuRdmaOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        pages = Math.Max(pages, options.UnreachablePages + 1);
        using var tb = new Mlx5Testbed(new Mlx5TestbedOptions { Gpus = 1, Path = options.Path });
        var gpu = tb.Gpu!;
        long bytes = (long)pages * Page.Size;
        ulong target = Mlx5Testbed.Map(tb.Server, pages);
        tb.Server.Write(target, Mlx5Testbed.Pattern(bytes, ~seed));
        long bound = gpu.Svm.Bind(target, target + (ulong)bytes);
        var counters = new Dictionary<string, long> { ["gpu_bound_pages"] = bound };
        if (options.PeerToPeer)
        {
            counters["export_errno"] = (long)gpu.ExportVram();
            counters["enable_p2p_errno"] = (long)tb.NicB.EnablePeerToPeer(gpu.DeviceChunk(0));
            var rng = new Random(seed);
            var refused = new HashSet<int>();
            while (refused.Count < options.UnreachablePages) refused.Add(rng.Next(pages));
            foreach (int p in refused) gpu.RefuseP2p(tb.Server.Mm.EntryAt(target + (ulong)p * Page.Size).Pfn);
        }
        var mrB = tb.Register(tb.NicB, tb.PdB, target, pages);
        ulong src = Mlx5Testbed.Map(tb.Client, pages);
        var mrA = tb.Register(tb.NicA, tb.PdA, src, pages);
        var data = Mlx5Testbed.Pattern(bytes, seed);
        tb.Client.Write(src, data);
        long migratedBefore = gpu.PagesMigratedToSystem;
        bool ok = tb.QpA.RdmaWrite(new Sge(src, (uint)bytes, mrA.Key), target, mrB.Key) == Errno.Ok;
        long migrations = gpu.PagesMigratedToSystem - migratedBefore;

        // Where the MTT points now, and the NIC's bytes as they sit in VRAM.
        long p2pPages = 0, vramVerified = 0;
        for (int p = 0; p < pages; p++)
        {
            ulong va = target + (ulong)p * Page.Size;
            if (!mrB.Umem!.TryGetTranslation(va, out _, out bool p2p, out _) || !p2p) continue;
            p2pPages++;
            ulong pfn = tb.Server.Mm.EntryAt(va).Pfn;
            if (DevPagemap.Of(tb.Machine, pfn) is { } vram && vram.DeviceBytes(pfn).SequenceEqual(data.AsSpan(p * Page.Size, Page.Size))) vramVerified++;
        }
        ok &= vramVerified == p2pPages;

        // F.4.3: the GPU reads the first word of every page.
        long faultsBefore = gpu.Device.Executor.FaultsRaised;
        var run = gpu.Svm.Run(GpuWorkloads.ReadEveryPage(target, (ulong)bytes));
        ok &= run.Completed;
        for (int t = 0; t < pages; t++)
            ok &= gpu.Device.Executor.ResultOf(t) == BitConverter.ToUInt64(data, t * Page.Size);
        counters["gpu_faults_reading"] = gpu.Device.Executor.FaultsRaised - faultsBefore;
        counters["vram_pages_verified"] = vramVerified;
        counters["gpu_p2p_pages_exported"] = gpu.P2pPagesExported;
        counters["gpu_p2p_pages_refused"] = gpu.P2pPagesRefused;
        counters["gpu_pages_migrated_to_ram"] = migrations;
        // The NIC's counters before the CPU's final read, whose migrate_to_ram revokes every p2p entry.
        foreach (var (key, value) in mrB.Snapshot()) counters[key] = value;
        long invalidations = mrB.Counters.PageInvalidations;
        ok &= Mlx5Testbed.Matches(tb.Server, target, data);
        counters["cpu_read_revocations"] = mrB.Counters.PageInvalidations - invalidations;
        long p2pBytes = p2pPages * Page.Size;
        return OdpWorkloads.Finish(tb, options.PeerToPeer ? "rdma-into-gpu-p2p" : "rdma-into-gpu-fallback", counters, ok,
            p2pBytes, bytes - p2pBytes, migrations);
    }

    /// <summary>
    /// Exporter-side invalidation: after a p2p transfer into VRAM, the GPU evicts the first half of the
    /// buffer to RAM and the CPU touches one page of the second half (migrate_to_ram). Both revoke the
    /// NIC's BAR entries (page_invalidations); the next transfer re-faults exactly those pages and maps
    /// them in RAM, the rest stays p2p.
    /// </summary>
    public static Mlx5WorkloadResult P2pRevocation(int pages, int seed)
    {
        pages = Math.Max(pages, 4);
        using var tb = new Mlx5Testbed(new Mlx5TestbedOptions { Gpus = 1 });
        var gpu = tb.Gpu!;
        long bytes = (long)pages * Page.Size;
        ulong target = Mlx5Testbed.Map(tb.Server, pages);
        tb.Server.Write(target, Mlx5Testbed.Pattern(bytes, ~seed));
        gpu.Svm.Bind(target, target + (ulong)bytes);
        bool ok = gpu.ExportVram() == Errno.Ok && tb.NicB.EnablePeerToPeer(gpu.DeviceChunk(0)) == Errno.Ok;
        var mrB = tb.Register(tb.NicB, tb.PdB, target, pages);
        ulong src = Mlx5Testbed.Map(tb.Client, pages);
        var mrA = tb.Register(tb.NicA, tb.PdA, src, pages);
        var first = Mlx5Testbed.Pattern(bytes, seed);
        tb.Client.Write(src, first);
        ok &= tb.QpA.RdmaWrite(new Sge(src, (uint)bytes, mrA.Key), target, mrB.Key) == Errno.Ok;
        long p2pBefore = CountP2p(mrB, target, pages);

        int half = pages / 2;
        long invalidationsBefore = mrB.Counters.PageInvalidations;
        long migratedBefore = gpu.PagesMigratedToSystem;
        gpu.Svm.Evict(target, target + (ulong)half * Page.Size);
        ulong touched = target + (ulong)(pages - 1) * Page.Size;
        ok &= tb.Server.Load<ulong>(touched) == BitConverter.ToUInt64(first, (pages - 1) * Page.Size);
        long revoked = mrB.Counters.PageInvalidations - invalidationsBefore;
        long migrations = gpu.PagesMigratedToSystem - migratedBefore;

        long faultsBefore = mrB.Counters.PageFaults;
        var second = Mlx5Testbed.Pattern(bytes, seed + 1);
        tb.Client.Write(src, second);
        ok &= tb.QpA.RdmaWrite(new Sge(src, (uint)bytes, mrA.Key), target, mrB.Key) == Errno.Ok;
        long p2pAfter = CountP2p(mrB, target, pages);
        ok &= Mlx5Testbed.Matches(tb.Server, target, second);
        var counters = OdpWorkloads.Merge(mrB.Snapshot());
        counters["p2p_entries_before_revocation"] = p2pBefore;
        counters["revoked_pages"] = revoked;
        counters["refaulted_pages"] = mrB.Counters.PageFaults - faultsBefore;
        counters["p2p_entries_after_refault"] = p2pAfter;
        return OdpWorkloads.Finish(tb, "p2p-revocation", counters, ok, p2pAfter * Page.Size, (pages - p2pAfter) * Page.Size, migrations);
    }

    /// <summary>
    /// F.4.4 — two GPUs: GPU A binds the buffer to its VRAM; GPU B's kernel reads it and faults on
    /// pages private to A, which hmm_range_fault migrates to RAM (a different pgmap owner). The
    /// shared-owner variant that maps in place is <see cref="TwoGpusSameHive"/>.
    /// </summary>
    public static Mlx5WorkloadResult TwoGpus(int pages, int seed)
    {
        pages = Math.Max(pages, 1);
        using var tb = new Mlx5Testbed(new Mlx5TestbedOptions { Gpus = 2 });
        var a = tb.Gpu!;
        var b = tb.Gpu2!;
        long bytes = (long)pages * Page.Size;
        long bound = BindPatternToGpuA(tb, pages, seed, out ulong target, out var data);
        long migratedBefore = a.PagesMigratedToSystem;
        var run = b.Svm.Run(GpuWorkloads.ReadEveryPage(target, (ulong)bytes));
        long migrations = a.PagesMigratedToSystem - migratedBefore;
        bool ok = run.Completed;
        for (int t = 0; t < pages; t++)
            ok &= b.Device.Executor.ResultOf(t) == BitConverter.ToUInt64(data, t * Page.Size);
        ok &= Mlx5Testbed.Matches(tb.Server, target, data);
        var counters = new Dictionary<string, long>
        {
            ["gpu_a_bound_pages"] = bound,
            ["gpu_b_faults"] = run.FaultsRaised,
            ["gpu_a_pages_migrated_to_ram"] = migrations,
            ["gpu_a_vram_pages_in_use"] = a.Svm.VramPagesInUse,
        };
        return OdpWorkloads.Finish(tb, "two-gpus", counters, ok, 0, bytes, migrations);
    }

    /// <summary>
    /// F.4.4, the AMD-style "same hive" variant: both GPUs share one pgmap owner (a <see cref="GpuHive"/>).
    /// GPU A binds the buffer to its VRAM; GPU B reads every page — hmm_range_fault with the hive as
    /// dev_private_owner hands B A's private pfns and B maps them in place as peer PTEs (no
    /// migration) — then writes every page's first word through those PTEs, and A reads its own VRAM
    /// back without faulting. A CPU touch of one page migrates it to RAM (A's migrate_to_ram), which
    /// unmaps it from B too; B's next pass faults on exactly that page and every value is intact.
    /// </summary>
    public static Mlx5WorkloadResult TwoGpusSameHive(int pages, int seed)
    {
        pages = Math.Max(pages, 2);
        using var tb = new Mlx5Testbed(new Mlx5TestbedOptions { Gpus = 2, GpuHive = true });
        var a = tb.Gpu!;
        var b = tb.Gpu2!;
        var hive = tb.Hive!;
        long bytes = (long)pages * Page.Size;
        long bound = BindPatternToGpuA(tb, pages, seed, out ulong target, out var data);
        long migratedBefore = a.PagesMigratedToSystem;

        // B reads A's VRAM in place.
        var read = b.Svm.Run(GpuWorkloads.ReadEveryPage(target, (ulong)bytes));
        bool ok = read.Completed;
        for (int t = 0; t < pages; t++)
            ok &= b.Device.Executor.ResultOf(t) == BitConverter.ToUInt64(data, t * Page.Size);
        long migrationsOnRead = a.PagesMigratedToSystem - migratedBefore;
        long peerEntries = CountAperture(b, target, pages, DeviceAperture.Peer);

        // B writes through its peer PTEs; A reads the values in its own VRAM.
        ulong value = 0x4849_5645_0000_0000UL | (uint)seed; // "HIVE"
        var write = b.Svm.Run(GpuWorkloads.WriteEveryPage(target, (ulong)bytes, value));
        ok &= write.Completed;
        var aRead = a.Svm.Run(GpuWorkloads.ReadEveryPage(target, (ulong)bytes));
        ok &= aRead.Completed;
        for (int t = 0; t < pages; t++)
            ok &= a.Device.Executor.ResultOf(t) == value;
        long vramAfterWrites = a.Svm.VramPagesInUse;
        long migrationsBeforeTouch = a.PagesMigratedToSystem - migratedBefore;

        // The CPU touches one page: A migrates it to RAM and unmaps it from B as well.
        int touched = pages / 2;
        ulong touchedVa = target + (ulong)touched * Page.Size;
        long unmapsBefore = hive.PeerUnmaps;
        var word = new byte[8];
        tb.Server.Read(touchedVa, word);
        ok &= BitConverter.ToUInt64(word) == value;
        long migrationsOnTouch = a.PagesMigratedToSystem - migratedBefore - migrationsBeforeTouch;
        long unmapsOnTouch = hive.PeerUnmaps - unmapsBefore;
        bool staleInB = b.DeviceTable.Lookup(touchedVa, out _);

        // B's next pass re-faults on the touched page only.
        var reread = b.Svm.Run(GpuWorkloads.ReadEveryPage(target, (ulong)bytes));
        ok &= reread.Completed;
        for (int t = 0; t < pages; t++)
            ok &= b.Device.Executor.ResultOf(t) == value;
        ok &= b.DeviceTable.Lookup(touchedVa, out var retranslated) && retranslated.Aperture == DeviceAperture.System;

        // Counted before the CPU read-back below, which pulls every VRAM page to RAM (a check, not
        // part of the workload).
        long migrations = a.PagesMigratedToSystem - migratedBefore;
        for (int p = 0; p < pages; p++)
            BitConverter.TryWriteBytes(data.AsSpan(p * Page.Size, 8), value);
        ok &= Mlx5Testbed.Matches(tb.Server, target, data);
        var counters = new Dictionary<string, long>
        {
            ["gpu_a_bound_pages"] = bound,
            ["gpu_b_faults"] = read.FaultsRaised,
            ["gpu_b_peer_entries"] = peerEntries,
            ["gpu_a_pages_migrated_on_b_read"] = migrationsOnRead,
            ["gpu_b_write_faults"] = write.FaultsRaised,
            ["gpu_a_read_faults"] = aRead.FaultsRaised,
            ["gpu_a_vram_pages_after_b_writes"] = vramAfterWrites,
            ["gpu_a_pages_migrated_before_touch"] = migrationsBeforeTouch,
            ["gpu_a_pages_migrated_on_cpu_touch"] = migrationsOnTouch,
            ["hive_peer_unmaps_on_cpu_touch"] = unmapsOnTouch,
            ["gpu_b_stale_entry_after_touch"] = staleInB ? 1 : 0,
            ["gpu_b_refaults_after_touch"] = reread.FaultsRaised,
            ["hive_peer_pages_mapped"] = hive.PeerPagesMapped,
        };
        // B reached A's VRAM peer to peer for every page; only the CPU-touched page went through RAM.
        return OdpWorkloads.Finish(tb, "two-gpus-same-hive", counters, ok, p2pBytes: bytes, fallbackBytes: 0, migrations: migrations);
    }

    /// <summary>
    /// The two-GPU preamble: <paramref name="pages"/> server pages filled with the seed's pattern
    /// and bound to GPU A's VRAM. Returns the pages the bind migrated.
    /// </summary>
    private static long BindPatternToGpuA(Mlx5Testbed tb, int pages, int seed, out ulong target, out byte[] data)
    {
        long bytes = (long)pages * Page.Size;
        target = Mlx5Testbed.Map(tb.Server, pages);
        data = Mlx5Testbed.Pattern(bytes, seed);
        tb.Server.Write(target, data);
        return tb.Gpu!.Svm.Bind(target, target + (ulong)bytes);
    }

    private static long CountAperture(NouveauGpu gpu, ulong target, int pages, DeviceAperture aperture)
    {
        long n = 0;
        for (int p = 0; p < pages; p++)
            if (gpu.DeviceTable.Lookup(target + (ulong)p * Page.Size, out var t) && t.Aperture == aperture) n++;
        return n;
    }

    private static long CountP2p(MemoryRegion mr, ulong target, int pages)
    {
        long n = 0;
        for (int p = 0; p < pages; p++)
            if (mr.Umem!.TryGetTranslation(target + (ulong)p * Page.Size, out _, out bool p2p, out _) && p2p) n++;
        return n;
    }
}
