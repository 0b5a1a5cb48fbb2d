using BenchmarkDotNet.Attributes;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;

namespace Hmm.Benchmarks;

/// <summary>
/// Issue 4's batching target: servicing device faults in batches of 256 (drain, sort,
/// de-duplicate, coalesce, hmm_range_fault, device page-table install, one replay) must reach
/// ≥ 2,000,000 faults/s on one core and be ≥ 5× faster per fault than batches of 1 — the seed's
/// "GPU is about batching things up", measured. Each invocation runs 4,096 device threads that
/// each fault once on a distinct, CPU-populated page; the mirror is cleared between invocations
/// (not measured). Both cases use the same reference driver (tests' MirrorDriver), differing only
/// in batch size. Baseline = batches of 1.
/// </summary>
[MemoryDiagnoser]
public class FaultServiceBenchmarks
{
    private const int Pages = 4096;
    private Machine _machine = null!;
    private Process _process = null!;
    private SimDevice _device1 = null!, _device256 = null!;
    private MirrorDriver _driver1 = null!, _driver256 = null!;
    private DeviceOp[] _ops = null!;
    private ulong _buf;

    [GlobalSetup]
    public void Setup()
    {
        LockValidator.Enabled = false;
        _machine = new Machine(new MachineOptions { SystemMemory = 256L << 20, LockValidation = false });
        LockValidator.Enabled = false;
        _process = _machine.CreateProcess("bench");
        _buf = _process.Mmap((ulong)Pages * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.Populate);
        _ops = new DeviceOp[Pages];
        for (int i = 0; i < Pages; i++) _ops[i] = new DeviceOp(_buf + ((ulong)i * Page.Size), DeviceAccess.Read);
        _device1 = new SimDevice(_machine, "gpu-batch1", new SimDeviceOptions { FaultBufferEntries = Pages });
        _device256 = new SimDevice(_machine, "gpu-batch256", new SimDeviceOptions { FaultBufferEntries = Pages });
        _driver1 = new MirrorDriver(_device1, _process, batchSize: 1);
        _driver256 = new MirrorDriver(_device256, _process, batchSize: 256);
        // Warm the JIT past tier 0 so a short job measures optimised code.
        var until = DateTime.UtcNow.AddSeconds(1.5);
        while (DateTime.UtcNow < until)
        {
            Reset(); Batch1();
            Reset(); Batch256();
        }
    }

    [IterationSetup]
    public void Reset()
    {
        _device1.Invalidate(_driver1.Instance, _buf, _buf + ((ulong)Pages * Page.Size));
        _device256.Invalidate(_driver256.Instance, _buf, _buf + ((ulong)Pages * Page.Size));
        _device1.Executor.LaunchOnePerThread(_driver1.Instance, 1, _ops);
        _device256.Executor.LaunchOnePerThread(_driver256.Instance, 1, _ops);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pages)]
    [InvocationCount(1)]
    public void Batch1() => Service(_device1, _driver1);

    [Benchmark(OperationsPerInvoke = Pages)]
    [InvocationCount(1)]
    public void Batch256() => Service(_device256, _driver256);

    private static void Service(SimDevice device, MirrorDriver driver)
    {
        device.Run();
        while (driver.ServiceFaults() > 0) { }
        device.Run();
        if (device.Executor.ParkedCount != 0) throw new InvalidOperationException("faults left unserviced");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _driver1.Dispose();
        _driver256.Dispose();
        _process.Exit();
        _machine.Dispose();
    }
}
