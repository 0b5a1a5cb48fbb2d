using BenchmarkDotNet.Attributes;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mirror;

namespace Hmm.Benchmarks;

/// <summary>
/// Device mirror page table (issue 4): programming 512 hmm_pfn words (one 2 MiB range) and
/// invalidating a 2 MiB range, against a plain copy of the same 512 ulongs (baseline).
/// </summary>
/// <remarks>
/// <see cref="Install512"/>: 512 4 KiB words overwriting an existing mapping (steady state,
/// the leaf table exists; alternating pfns so every entry is rewritten).
/// <see cref="InstallClear512"/>: install 512 4 KiB words into an empty range and clear it again —
/// the leaf, PMD and level-1 tables are pruned each time and come back from the pool.
/// <see cref="InstallClearThp"/>: the same with order-9 words (one 2 MiB leaf).
/// <see cref="Translate512"/>: 512 device-MMU walks over the range.
/// Memory per GiB mirrored (exact, asserted in DevicePageTableTests.MemoryPerGib_WithinTargets):
/// 4 KiB leaves 1,075,320 B (515 tables × 2,088 B; target ≤ 2 MiB); 2 MiB leaves 6,264 B
/// (3 tables; target ≤ 16 KiB); empty table (root) 2,088 B.
/// Measured (--job short, .NET 10, 2 shared cores, noisy): Copy512 152 ns; Install512 822 ns
/// (5.4×); InstallClear512 1,419 ns (9.3×); InstallClearThp 54 ns (0.36×); Translate512
/// 3,661 ns (24×, ~7 ns per 4-level walk); 0 B allocated everywhere. No ratio target was set
/// for these in issue 4; they are the baseline for later tuning.
/// </remarks>
[MemoryDiagnoser]
public class DevicePageTableBenchmarks
{
    private const int Entries = Page.PmdPages;
    private const ulong Va = 0x7f00_0000_0000;

    private readonly ulong[] _src = new ulong[Entries];
    private readonly ulong[] _dst = new ulong[Entries];
    private readonly ulong[] _wordsA = new ulong[Entries];
    private readonly ulong[] _wordsB = new ulong[Entries];
    private readonly ulong[] _thp = new ulong[Entries];
    private DevicePageTable _steady = null!;
    private DevicePageTable _cycle = null!;
    private bool _flip;

    /// <summary>Builds the words and a table with the range already mirrored.</summary>
    [GlobalSetup]
    public void Setup()
    {
        for (int i = 0; i < Entries; i++)
        {
            _src[i] = (ulong)i * 0x1001;
            _wordsA[i] = HmmPfn.Make(0x10_0000 + (ulong)i, write: true);
            _wordsB[i] = HmmPfn.Make(0x20_0000 + (ulong)i, write: false);
            _thp[i] = HmmPfn.Make(0x30_0000 + (ulong)i, write: true, order: Page.PmdOrder);
        }
        _steady = new DevicePageTable();
        _steady.Install(Va, _wordsA);
        _cycle = new DevicePageTable();
        _cycle.Install(Va, _wordsA);
        _cycle.Clear(Va, Va + Page.PmdSize);
    }

    /// <summary>Baseline: a plain scalar copy of 512 ulongs.</summary>
    [Benchmark(Baseline = true)]
    public void Copy512()
    {
        var s = _src;
        var d = _dst;
        for (int i = 0; i < s.Length; i++) d[i] = s[i];
    }

    /// <summary>Install 512 4 KiB words over an existing mapping.</summary>
    [Benchmark]
    public void Install512()
    {
        _flip = !_flip;
        _steady.Install(Va, _flip ? _wordsB : _wordsA);
    }

    /// <summary>Install 512 4 KiB words into an empty range, then Clear the 2 MiB range (prune + pool reuse).</summary>
    [Benchmark]
    public long InstallClear512()
    {
        _cycle.Install(Va, _wordsA);
        return _cycle.Clear(Va, Va + Page.PmdSize);
    }

    /// <summary>Install one THP (order-9 words → one 2 MiB leaf), then Clear it.</summary>
    [Benchmark]
    public long InstallClearThp()
    {
        _cycle.Install(Va, _thp);
        return _cycle.Clear(Va, Va + Page.PmdSize);
    }

    /// <summary>512 device-MMU translations over a mirrored 2 MiB range.</summary>
    [Benchmark]
    public ulong Translate512()
    {
        ulong sum = 0;
        for (int i = 0; i < Entries; i++)
        {
            _steady.Translate(Va + ((ulong)i << Page.Shift), write: false, out var t);
            sum += t.Frame;
        }
        return sum;
    }
}
