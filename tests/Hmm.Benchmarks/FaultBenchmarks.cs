using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

namespace Hmm.Benchmarks;

/// <summary>
/// Target 1 (foundation issue): a first-touch anonymous write fault of a 4 KiB page — frame
/// allocation, clearing, PTE install and the store, through <see cref="Process.Store{T}"/> —
/// costs at most 4× clearing 4 KiB and storing one ulong into a managed array.
/// </summary>
/// <remarks>
/// <para>Every measured operation touches a page it has never touched before: one invocation
/// walks <see cref="Pages"/> consecutive pages (<c>OperationsPerInvoke = Pages</c>), and the
/// iteration setup — not measured — drops them again with MADV_DONTNEED so the next iteration
/// faults every one of them anew. <see cref="InvocationCount"/> is 1 so that no invocation
/// ever sees pages populated by a previous one.</para>
/// <para>The baseline clears <see cref="Pages"/> distinct 4 KiB slices of one array of the same
/// size (64 MiB, twice the host's L3) and stores one ulong into each, so both sides stream the
/// same number of bytes through the same cache hierarchy.</para>
/// <para><see cref="FreshMappingWriteFault"/> is informational (not part of the target): the
/// region is unmapped and mapped again in the setup, so its faults also build the page-table
/// pages and the anon_vma, as the first touches of a brand-new mmap do.</para>
/// </remarks>
[MemoryDiagnoser]
[InvocationCount(1)]
public class FaultBenchmarks
{
    /// <summary>Pages touched per invocation (64 MiB).</summary>
    public const int Pages = 16384;

    private const ulong Length = (ulong)Pages * Page.Size;

    private Machine _machine = null!;
    private Process _process = null!;
    private ulong _region;
    private byte[] _array = null!;

    /// <summary>Boots a 1 GiB machine (lock validation off) and maps the region once.</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 1L << 30, LockValidation = false });
        _process = _machine.CreateProcess("bench");
        _region = _process.Mmap(Length, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        _array = new byte[Length];
        WarmUpTieredJit();
    }

    /// <summary>
    /// With one invocation per iteration, the short job's warm-up (one jitting + 3 iterations,
    /// about 50 ms) ends before tiered compilation has installed optimised code for the fault
    /// path (tier-1 waits for a 100 ms quiet period and 30 calls): the first runs measured tier-0
    /// code at about twice the steady-state cost. Run both paths until they are hot instead, so
    /// every job measures the steady state.
    /// </summary>
    private void WarmUpTieredJit()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int round = 0; round < 40 || clock.ElapsedMilliseconds < 1000; round++)
        {
            DropPages();
            TouchAll();
            ClearAndStoreBaseline();
        }
        Thread.Sleep(200);   // let the background tier-1 compilations finish and be installed
    }

    /// <summary>Tears the machine down.</summary>
    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _process.Exit();
        _machine.Dispose();
    }

    /// <summary>MADV_DONTNEED over the region: every page is faulted afresh in the next invocation.</summary>
    [IterationSetup(Target = nameof(FirstTouchWriteFault))]
    public void DropPages() => _process.Madvise(_region, Length, Advice.DontNeed);

    /// <summary>munmap + mmap of the region at the same address: page tables and anon_vma are rebuilt too.</summary>
    [IterationSetup(Target = nameof(FreshMappingWriteFault))]
    public void Remap()
    {
        _process.Munmap(_region, Length);
        _region = _process.Mmap(Length, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.Fixed, addr: _region);
    }

    /// <summary>Baseline: clear a 4 KiB slice of a large array and store one ulong into it.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pages)]
    public void ClearAndStoreBaseline()
    {
        byte[] array = _array;
        for (int i = 0; i < Pages; i++)
        {
            int offset = i * Page.Size;
            array.AsSpan(offset, Page.Size).Clear();
            Unsafe.WriteUnaligned(ref array[offset], (ulong)i);
        }
    }

    /// <summary>Process.Store&lt;ulong&gt; into a never-touched page of a private anonymous mapping.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public void FirstTouchWriteFault() => TouchAll();

    /// <summary>Same, right after the region was mapped (includes page-table and anon_vma set-up).</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public void FreshMappingWriteFault() => TouchAll();

    private void TouchAll()
    {
        Process process = _process;
        ulong va = _region;
        for (int i = 0; i < Pages; i++, va += Page.Size) process.Store(va, (ulong)i);
    }
}
