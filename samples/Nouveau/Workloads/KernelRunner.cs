using Hmm.Runtime.Devices;

namespace Hmm.Samples.Nouveau;

/// <summary>
/// The driver side a kernel run needs: its fault-servicing bottom half (nouveau's
/// <c>nouveau_svm_fault</c> work, UVM's replayable-fault service), which drains the device's
/// fault buffer, services, and replays or cancels.
/// </summary>
public interface IGpuFaultService
{
    /// <summary>Services what the fault buffer holds; returns the fault entries fetched.</summary>
    int ServiceFaults();
}

/// <summary>The outcome of one kernel run.</summary>
/// <param name="Completed">Every thread finished or failed (none left parked).</param>
/// <param name="Passes">Executor passes (1 + service/replay rounds).</param>
/// <param name="ThreadsDone">Threads that ran every op.</param>
/// <param name="ThreadsFailed">Threads whose fault was cancelled (their channel was killed).</param>
/// <param name="FaultsRaised">Faults the device MMU raised during the run.</param>
/// <param name="OpsExecuted">Accesses that completed.</param>
/// <param name="SimulatedNs">Simulated time the run took on the device clock (launch included).</param>
public readonly record struct KernelRun(bool Completed, int Passes, int ThreadsDone, int ThreadsFailed, long FaultsRaised, long OpsExecuted, long SimulatedNs);

/// <summary>
/// Runs a <see cref="KernelProgram"/> on a <see cref="SimDevice"/>'s <see cref="DeviceExecutor"/>:
/// launch (charging the kernel-launch latency, drivers.md E row 2), then alternate executor passes
/// with the driver's fault service until no thread is parked. A run that stops making progress
/// (no thread runnable after servicing, <see cref="StallLimit"/> times in a row) ends with
/// <see cref="KernelRun.Completed"/> false instead of spinning forever.
/// </summary>
/// <remarks>
/// Access counters (C.5) count the GPU's remote accesses. The runtime's executor reports only
/// faults, so the runner samples: when a thread finishes, each of its accesses that the device
/// page table maps in the system aperture (not VRAM) is counted once. That is exact for the
/// access-counter workload (read-only, no migration while it runs) and an approximation otherwise.
/// </remarks>
public static class KernelRunner
{
    /// <summary>Consecutive passes without a runnable thread after servicing before a run is declared stuck.</summary>
    public const int StallLimit = 3;

    /// <summary>
    /// Launches <paramref name="program"/> in address space <paramref name="instance"/> of
    /// <paramref name="device"/> and runs it to completion, servicing faults with <paramref name="service"/>.
    /// </summary>
    /// <param name="device">The GPU.</param>
    /// <param name="instance">The attached address space (channel instance) the threads run in.</param>
    /// <param name="program">The kernel.</param>
    /// <param name="service">The driver's fault service.</param>
    /// <param name="accessCounters">When set, remote accesses of finished threads are counted (see remarks).</param>
    /// <param name="isLocalFrame">
    /// Whether a system-aperture frame is in fact the device's own memory (a driver that maps its
    /// device-private pages by pfn); such accesses are local, not counted. Null: none is.
    /// </param>
    /// <param name="maxPasses">Upper bound on executor passes.</param>
    public static KernelRun Run<TService>(SimDevice device, int instance, KernelProgram program, TService service,
                                          AccessCounters? accessCounters = null, Func<ulong, bool>? isLocalFrame = null, int maxPasses = 20_000)
        where TService : IGpuFaultService
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(service);
        var exec = device.Executor;
        long t0 = device.Clock.Now;
        long faults0 = exec.FaultsRaised, ops0 = exec.OpsExecuted;
        device.Clock.Advance(device.Options.Costs.KernelLaunchNs);
        exec.Launch(instance, client: 0, program.Ops, program.Starts);
        var sampled = accessCounters != null ? new bool[program.Threads] : null;
        var table = device.PageTableOf(instance);

        int passes = 0, stalls = 0;
        bool completed = false;
        while (passes < maxPasses)
        {
            passes++;
            device.Run();
            if (sampled != null && table != null) Sample(device, program, table, accessCounters!, isLocalFrame, sampled);
            if (exec.ParkedCount == 0 && exec.Count(DeviceThreadState.Runnable) == 0)
            {
                completed = true;
                break;
            }
            service.ServiceFaults();
            if (exec.Count(DeviceThreadState.Runnable) == 0)
            {
                if (++stalls >= StallLimit) break;
            }
            else
            {
                stalls = 0;
            }
        }
        return new KernelRun(completed, passes, exec.Count(DeviceThreadState.Done), exec.Count(DeviceThreadState.Failed),
                             exec.FaultsRaised - faults0, exec.OpsExecuted - ops0, device.Clock.Now - t0);
    }

    private static void Sample(SimDevice device, KernelProgram program, DevicePageTable table, AccessCounters counters, Func<ulong, bool>? isLocalFrame, bool[] sampled)
    {
        var exec = device.Executor;
        for (int t = 0; t < sampled.Length; t++)
        {
            if (sampled[t] || exec.StateOf(t) != DeviceThreadState.Done) continue;
            sampled[t] = true;
            for (int k = program.Starts[t], end = program.EndOf(t); k < end; k++)
            {
                ulong va = program.Ops[k].Address;
                if (table.Lookup(va, out var tr) && tr.Aperture == DeviceAperture.System && (isLocalFrame == null || !isLocalFrame(tr.Frame)))
                    counters.RecordAccess(va, device.Clock.Now);
            }
        }
    }
}
