using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

namespace Hmm.Benchmarks;

/// <summary>
/// The CPU paths issue 8 touched besides the first-touch fault (<see cref="FaultBenchmarks"/>):
/// a store to a page that is already mapped writable (the TLB-section hot path) and a
/// copy-on-write fault after fork (do_wp_page → wp_page_copy: PTL, reference, copy, TLB flush).
/// Each is stated as a ratio to a managed-array baseline in the same run, so the same benchmark
/// built on two runtime versions can be compared through its ratio.
/// </summary>
/// <remarks>
/// <see cref="CowWriteFault"/> writes each of <see cref="Pages"/> pages shared with a forked
/// child once; the iteration setup (not measured) forks a fresh child so every page is shared
/// read-only again. <see cref="InvocationCount"/> is 1 for that reason.
/// </remarks>
[MemoryDiagnoser]
[InvocationCount(1)]
public class CpuAccessBenchmarks
{
    /// <summary>Pages touched per invocation (16 MiB).</summary>
    public const int Pages = 4096;

    private const ulong Length = (ulong)Pages * Page.Size;

    private Machine _machine = null!;
    private Process _process = null!;
    private Process? _child;
    private ulong _region;
    private byte[] _array = null!;
    private byte[] _source = null!;

    /// <summary>Boots a 512 MiB machine (lock validation off) and populates the region.</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 512L << 20, LockValidation = false });
        _process = _machine.CreateProcess("bench");
        _region = _process.Mmap(Length, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        _array = new byte[Length];
        _source = new byte[Length];
        StoreAll();
        // Tier-1 JIT for both paths before measuring (see FaultBenchmarks.WarmUpTieredJit).
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int round = 0; round < 40 || clock.ElapsedMilliseconds < 1000; round++)
        {
            Share();
            StoreAll();
            CopyAndStoreBaseline();
            StoreBaseline();
        }
        Thread.Sleep(200);
    }

    /// <summary>Tears the machine down.</summary>
    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _child?.Exit();
        _process.Exit();
        _machine.Dispose();
    }

    /// <summary>A fresh fork: every page of the region is shared read-only with the child again.</summary>
    [IterationSetup(Target = nameof(CowWriteFault))]
    public void Share()
    {
        _child?.Exit();
        _child = _process.Fork();
    }

    /// <summary>Baseline of <see cref="StorePopulated"/>: one ulong stored per 4 KiB slice of a managed array.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pages)]
    public void StoreBaseline()
    {
        byte[] array = _array;
        for (int i = 0; i < Pages; i++) Unsafe.WriteUnaligned(ref array[i * Page.Size], (ulong)i);
    }

    /// <summary>Process.Store&lt;ulong&gt; into a page already mapped writable (no fault).</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public void StorePopulated() => StoreAll();

    /// <summary>Baseline of <see cref="CowWriteFault"/>: copy a 4 KiB slice and store one ulong into the copy.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public void CopyAndStoreBaseline()
    {
        byte[] array = _array, source = _source;
        for (int i = 0; i < Pages; i++)
        {
            int offset = i * Page.Size;
            source.AsSpan(offset, Page.Size).CopyTo(array.AsSpan(offset, Page.Size));
            Unsafe.WriteUnaligned(ref array[offset], (ulong)i);
        }
    }

    /// <summary>Process.Store&lt;ulong&gt; into a page shared with a forked child: a copy-on-write fault each.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public void CowWriteFault() => StoreAll();

    private void StoreAll()
    {
        Process process = _process;
        ulong va = _region;
        for (int i = 0; i < Pages; i++, va += Page.Size) process.Store(va, (ulong)i);
    }
}
