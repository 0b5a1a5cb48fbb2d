using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;

namespace Hmm.Benchmarks;

/// <summary>
/// Issue 10 target: generated drivers within 1.10× of the hand-written ones, measured in the same
/// run. Migration: 64 MiB of 4 KiB pages (and of THPs) to device-private memory and back, the
/// hand-written <see cref="BenchDriver"/> as baseline of each category. Fault service: 4096 device
/// read faults serviced in batches of 256, the hand-written <c>MirrorDriver</c> as baseline.
/// The generated migration additionally does what BenchDriver skips because it has no mirror:
/// the HMM-R19 invalidation of its own device mapping per 2 MiB piece under U.
/// </summary>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class GeneratedDriverBenchmarks
{
    private const int Pages = MigrationBenchmarks.Pages;
    private const ulong Length = (ulong)Pages * Page.Size;
    private const int FaultPages = 4096;

    private Machine _machine = null!;
    private Process _process = null!;
    private BenchDriver _hand = null!;
    private GeneratedBenchDriver _generated = null!;
    private ulong _base4K, _baseThp;

    private SimDevice _handDevice = null!, _genDevice = null!;
    private MirrorDriver _handMirror = null!;
    private GeneratedMirrorDriver _genMirror = null!;
    private DeviceOp[] _ops = null!;
    private ulong _faultBuf;

    /// <summary>One machine; both migration drivers own 192 MiB of device memory; both mirrors their own device.</summary>
    [GlobalSetup]
    public void Setup()
    {
        LockValidator.Enabled = false;
        _machine = new Machine(new MachineOptions { SystemMemory = 1L << 30, LockValidation = false });
        _process = _machine.CreateProcess("bench");
        _hand = new BenchDriver(_machine, 192UL << 20);
        _generated = new GeneratedBenchDriver();
        Check(_generated.Attach(new SimDevice(_machine, "gen-devmem"), _process));
        _base4K = MapRegion(Advice.NoHugePage);
        _baseThp = MapRegion(Advice.HugePage);

        _faultBuf = _process.Mmap((ulong)FaultPages * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.Populate);
        _ops = new DeviceOp[FaultPages];
        for (int i = 0; i < FaultPages; i++) _ops[i] = new DeviceOp(_faultBuf + ((ulong)i * Page.Size), DeviceAccess.Read);
        _handDevice = new SimDevice(_machine, "hand", new SimDeviceOptions { FaultBufferEntries = FaultPages });
        _genDevice = new SimDevice(_machine, "gen", new SimDeviceOptions { FaultBufferEntries = FaultPages });
        _handMirror = new MirrorDriver(_handDevice, _process, batchSize: 256);
        _genMirror = new GeneratedMirrorDriver();
        Check(_genMirror.Attach(_genDevice, _process));

        if (Generated4K() != 2L * Pages || GeneratedThp() != 2L * Pages) throw new InvalidOperationException("the generated twin did not move every page");
        var until = DateTime.UtcNow.AddSeconds(2);
        while (DateTime.UtcNow < until)
        {
            Hand4K(); Generated4K(); HandThp(); GeneratedThp();
            ResetFaults(); HandFaultService(); ResetFaults(); GeneratedFaultService();
        }
    }

    private static void Check(Errno e)
    {
        if (e != Errno.Ok) throw new InvalidOperationException(e.ToString());
    }

    private ulong MapRegion(Advice advice)
    {
        ulong map = _process.Mmap(Length + Page.PmdSize, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        ulong start = (map + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        _process.Madvise(start, Length, advice);
        for (ulong off = 0; off < Length; off += Page.Size) _process.Store(start + off, start + off);
        return start;
    }

    /// <summary>Hand-written: 64 MiB of 4 KiB pages there and back.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pages), BenchmarkCategory("Migrate4K")]
    public long Hand4K() => _hand.ToDevice(_process, _base4K, Pages, thp: false) + _hand.ToSystem(_process, _base4K, Pages, thp: false);

    /// <summary>Generated: the same.</summary>
    [Benchmark(OperationsPerInvoke = Pages), BenchmarkCategory("Migrate4K")]
    public long Generated4K()
    {
        _generated.MigrateToDevice(_base4K, _base4K + Length, out long a);
        _generated.MigrateToSystem(_base4K, _base4K + Length, out long b);
        return a + b;
    }

    /// <summary>Hand-written: 32 THPs there and back as 2 MiB folios.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pages), BenchmarkCategory("MigrateThp")]
    public long HandThp() => _hand.ToDevice(_process, _baseThp, Pages, thp: true) + _hand.ToSystem(_process, _baseThp, Pages, thp: true);

    /// <summary>Generated: the same.</summary>
    [Benchmark(OperationsPerInvoke = Pages), BenchmarkCategory("MigrateThp")]
    public long GeneratedThp()
    {
        _generated.MigrateToDevice(_baseThp, _baseThp + Length, out long a);
        _generated.MigrateToSystem(_baseThp, _baseThp + Length, out long b);
        return a + b;
    }

    /// <summary>Clears both mirrors and relaunches 4096 read threads on each device.</summary>
    [IterationSetup(Targets = [nameof(HandFaultService), nameof(GeneratedFaultService)])]
    public void ResetFaults()
    {
        _handDevice.Invalidate(_handMirror.Instance, _faultBuf, _faultBuf + ((ulong)FaultPages * Page.Size));
        _genDevice.Invalidate(_genMirror.Instance, _faultBuf, _faultBuf + ((ulong)FaultPages * Page.Size));
        _handDevice.Executor.LaunchOnePerThread(_handMirror.Instance, 1, _ops);
        _genDevice.Executor.LaunchOnePerThread(_genMirror.Instance, 1, _ops);
    }

    /// <summary>Hand-written MirrorDriver: run, service every batch, run again.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = FaultPages), BenchmarkCategory("FaultService"), InvocationCount(1)]
    public void HandFaultService()
    {
        _handDevice.Run();
        while (_handMirror.ServiceFaults() > 0) { }
        _handDevice.Run();
        if (_handDevice.Executor.ParkedCount != 0) throw new InvalidOperationException("faults left unserviced");
    }

    /// <summary>Generated twin: the same.</summary>
    [Benchmark(OperationsPerInvoke = FaultPages), BenchmarkCategory("FaultService"), InvocationCount(1)]
    public void GeneratedFaultService()
    {
        _genDevice.Run();
        while (_genMirror.ServiceFaults() > 0) { }
        _genDevice.Run();
        if (_genDevice.Executor.ParkedCount != 0) throw new InvalidOperationException("faults left unserviced");
    }

    /// <summary>Tears down.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _handMirror.Dispose();
        _genMirror.Detach();
        _generated.Detach();
        _process.Exit();
        _machine.Dispose();
    }
}
