using BenchmarkDotNet.Attributes;
using Hmm.Runtime;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;

namespace Hmm.Benchmarks;

/// <summary>
/// The kernel's THP-migration benchmark (hmm-tests' benchmark_thp_migration) on the dmirror
/// sample: one HMM_DMIRROR_MIGRATE_TO_DEV plus one HMM_DMIRROR_MIGRATE_TO_SYS round trip of
/// 1/4, 1/2, 1, 2, 4, 8 and 128 × 2 MiB of anonymous memory on a private device, with THP
/// (MADV_HUGEPAGE: 2 MiB entries migrate whole) and without (MADV_NOHUGEPAGE: base pages).
/// MIGRATE_TO_DEV includes the ioctl's read-back of the whole range into the user buffer.
/// </summary>
/// <remarks>
/// Baseline: memcpy of the same bytes there and back (two <see cref="Buffer.MemoryCopy"/> of the
/// range between two native buffers), measured in the same run; the Ratio column is the round
/// trip's cost in units of that.
/// </remarks>
[MemoryDiagnoser]
public class DmirrorBenchmarks
{
    private Machine _machine = null!;
    private Process _process = null!;
    private DmirrorDevice _device = null!;
    private Dmirror _mirror = null!;
    private ulong _buf;
    private byte[] _out = null!;
    private unsafe byte* _a;
    private unsafe byte* _b;

    /// <summary>Range size in 4 KiB pages: 1/4, 1/2, 1, 2, 4, 8 and 128 × 2 MiB.</summary>
    [Params(128, 256, 512, 1024, 2048, 4096, 65536)]
    public int Pages { get; set; }

    /// <summary>MADV_HUGEPAGE (true) or MADV_NOHUGEPAGE (false) on the range.</summary>
    [Params(true, false)]
    public bool Thp { get; set; }

    private ulong Bytes => (ulong)Pages * Page.Size;

    /// <summary>A 2 GiB machine (lock validation off), device 0, a populated range.</summary>
    [GlobalSetup]
    public unsafe void Setup()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 2L << 30, LockValidation = false });
        _process = _machine.CreateProcess("bench");
        _device = DmirrorDevice.Create(_machine, 0);
        _mirror = _device.Open(_process);
        _buf = _process.Mmap(Math.Max(Bytes, Page.PmdSize), Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        _process.Madvise(_buf, Math.Max(Bytes, Page.PmdSize), Thp ? Advice.HugePage : Advice.NoHugePage);
        var data = new byte[Bytes];
        new Random(7).NextBytes(data);
        _process.Write(_buf, data);
        _out = new byte[Bytes];
        _a = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)Bytes, 4096);
        _b = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)Bytes, 4096);
        data.CopyTo(new Span<byte>(_a, (int)Bytes));
        new Span<byte>(_b, (int)Bytes).Clear();
    }

    /// <summary>Closes the mirror (evicting the device) and frees everything.</summary>
    [GlobalCleanup]
    public unsafe void Cleanup()
    {
        _mirror.Close();
        _machine.Dispose();
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_a);
        System.Runtime.InteropServices.NativeMemory.AlignedFree(_b);
    }

    /// <summary>memcpy of the range to the "device" and back.</summary>
    [Benchmark(Baseline = true)]
    public unsafe void Memcpy()
    {
        Buffer.MemoryCopy(_a, _b, (long)Bytes, (long)Bytes);
        Buffer.MemoryCopy(_b, _a, (long)Bytes, (long)Bytes);
    }

    /// <summary>MIGRATE_TO_DEV + MIGRATE_TO_SYS of the range.</summary>
    [Benchmark]
    public int RoundTrip()
    {
        var e = _mirror.MigrateToDevice(_buf, Pages, _out, out var c);
        if (e != Errno.Ok || c.Cpages != Pages) throw new InvalidOperationException($"MIGRATE_TO_DEV: {e}, {c}");
        e = _mirror.MigrateToSystem(_buf, Pages, out var back);
        if (e != Errno.Ok) throw new InvalidOperationException($"MIGRATE_TO_SYS: {e}");
        return back.Cpages;
    }
}
