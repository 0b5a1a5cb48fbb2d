using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Hmm.Runtime;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Samples.Mlx5;

namespace Hmm.Benchmarks;

/// <summary>
/// Issue 14, acceptance 4, first target: an RDMA WRITE of 256 MiB from the client into the server's
/// explicit ODP MR whose translations are already faulted in (no page fault on the way: requester
/// DMA read, the wire, responder DMA write, in 64 KiB bursts through the MTTs), as a ratio to a plain
/// memcpy of 256 MiB between two native buffers in the same run. Target ≥ 0.5× throughput (time ≤ 2×).
/// </summary>
[MemoryDiagnoser]
public unsafe class Mlx5RdmaWriteBenchmarks
{
    private const long Bytes = 256L << 20;
    private const int Pages = (int)(Bytes >> Page.Shift);
    private Mlx5Testbed _tb = null!;
    private MemoryRegion _src = null!, _dst = null!;
    private ulong _srcVa, _dstVa;
    private byte* _a, _b;

    [GlobalSetup]
    public void Setup()
    {
        _tb = new Mlx5Testbed(new Mlx5TestbedOptions { SystemMemory = 768L << 20, LockValidation = false });
        LockValidator.Enabled = false;
        _srcVa = Mlx5Testbed.Map(_tb.Client, Pages);
        _dstVa = Mlx5Testbed.Map(_tb.Server, Pages);
        var chunk = Mlx5Testbed.Pattern(1 << 20, 1);
        for (long off = 0; off < Bytes; off += chunk.Length) _tb.Client.Write(_srcVa + (ulong)off, chunk);
        _src = _tb.Register(_tb.NicA, _tb.PdA, _srcVa, Pages);
        _dst = _tb.Register(_tb.NicB, _tb.PdB, _dstVa, Pages);
        if (RdmaWrite256MiB() != Errno.Ok || _dst.Umem!.MappedPages != Pages) throw new InvalidOperationException("warm-up write failed");
        _a = (byte*)NativeMemory.AlignedAlloc((nuint)Bytes, 4096);
        _b = (byte*)NativeMemory.AlignedAlloc((nuint)Bytes, 4096);
        new Span<byte>(_a, 1 << 20).Fill(1);
        for (long off = 0; off < Bytes; off += 1 << 20) Buffer.MemoryCopy(_a, _a + off, 1 << 20, 1 << 20);
        Buffer.MemoryCopy(_a, _b, Bytes, Bytes);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.AlignedFree(_a);
        NativeMemory.AlignedFree(_b);
        _tb.Finish();
        _tb.Dispose();
    }

    /// <summary>The baseline: memcpy of 256 MiB.</summary>
    [Benchmark(Baseline = true)]
    public void Memcpy256MiB() => Buffer.MemoryCopy(_a, _b, Bytes, Bytes);

    /// <summary>RDMA WRITE of 256 MiB into the already-faulted ODP MR.</summary>
    [Benchmark]
    public Errno RdmaWrite256MiB() => _tb.QpA.RdmaWrite(new Sge(_srcVa, (uint)Bytes, _src.Key), _dstVa, _dst.Key);
}

/// <summary>
/// Issue 14, acceptance 4, second target: an RDMA WRITE of 256 MiB into a server buffer the GPU just
/// bound to its VRAM — peer-to-peer (the NIC faults, gets BAR1 addresses, writes VRAM; nothing
/// migrates) as a ratio to the mainline fallback (every page migrates to RAM on the NIC's fault, the
/// baseline). Not measured: re-binding the buffer to VRAM before each invocation (for p2p an eviction
/// first, so the NIC's entries are revoked and the timed write faults them in again).
/// </summary>
[MemoryDiagnoser]
public class Mlx5GpuRdmaBenchmarks
{
    private const long Bytes = 256L << 20;
    private const int Pages = (int)(Bytes >> Page.Shift);
    private Rig _p2p = null!, _fallback = null!;

    private sealed class Rig
    {
        public Mlx5Testbed Tb = null!;
        public MemoryRegion Src = null!, Dst = null!;
        public ulong SrcVa, DstVa;

        public Errno Write() => Tb.QpA.RdmaWrite(new Sge(SrcVa, (uint)Bytes, Src.Key), DstVa, Dst.Key);
    }

    private static Rig Build(bool p2p)
    {
        var rig = new Rig { Tb = new Mlx5Testbed(new Mlx5TestbedOptions { SystemMemory = 768L << 20, LockValidation = false, Gpus = 1 }) };
        LockValidator.Enabled = false;
        var gpu = rig.Tb.Gpu!;
        rig.SrcVa = Mlx5Testbed.Map(rig.Tb.Client, Pages);
        rig.DstVa = Mlx5Testbed.Map(rig.Tb.Server, Pages);
        var chunk = Mlx5Testbed.Pattern(1 << 20, 2);
        for (long off = 0; off < Bytes; off += chunk.Length)
        {
            rig.Tb.Client.Write(rig.SrcVa + (ulong)off, chunk);
            rig.Tb.Server.Write(rig.DstVa + (ulong)off, chunk);
        }
        gpu.Svm.Bind(rig.DstVa, rig.DstVa + (ulong)Bytes);
        if (p2p && (gpu.ExportVram() != Errno.Ok || rig.Tb.NicB.EnablePeerToPeer(gpu.DeviceChunk(0)) != Errno.Ok))
            throw new InvalidOperationException("p2p setup failed");
        rig.Src = rig.Tb.Register(rig.Tb.NicA, rig.Tb.PdA, rig.SrcVa, Pages);
        rig.Dst = rig.Tb.Register(rig.Tb.NicB, rig.Tb.PdB, rig.DstVa, Pages);
        return rig;
    }

    [GlobalSetup(Target = nameof(P2pIntoVram256MiB))]
    public void SetupP2p() => _p2p = Build(p2p: true);

    [GlobalSetup(Target = nameof(FallbackThroughRam256MiB))]
    public void SetupFallback() => _fallback = Build(p2p: false);

    [IterationSetup(Target = nameof(P2pIntoVram256MiB))]
    public void RebindP2p()
    {
        var svm = _p2p.Tb.Gpu!.Svm;
        svm.Evict(_p2p.DstVa, _p2p.DstVa + (ulong)Bytes);
        svm.Bind(_p2p.DstVa, _p2p.DstVa + (ulong)Bytes);
    }

    [IterationSetup(Target = nameof(FallbackThroughRam256MiB))]
    public void RebindFallback() => _fallback.Tb.Gpu!.Svm.Bind(_fallback.DstVa, _fallback.DstVa + (ulong)Bytes);

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var rig in new[] { _p2p, _fallback })
        {
            if (rig == null) continue;
            rig.Tb.Finish();
            rig.Tb.Dispose();
        }
    }

    /// <summary>The baseline: every page the NIC touches migrates to RAM first (mainline).</summary>
    [Benchmark(Baseline = true)]
    public Errno FallbackThroughRam256MiB() => _fallback.Write();

    /// <summary>P2p: the NIC writes VRAM through the GPU's BAR1.</summary>
    [Benchmark]
    public Errno P2pIntoVram256MiB() => _p2p.Write();
}
