using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Scheduling;

namespace Hmm.Samples.TestHmm.Exploration;

/// <summary>
/// Invalidations (madvise DONTNEED, a CPU store, an OOM reaper) racing a GPU-style fault-buffer
/// service. The oracle that catches a stale device mapping: after the race the CPU writes
/// each page again (a DONTNEEDed page gets a new frame) and the device must read those values.
/// </summary>
public static class FaultServiceRaces
{
    private const int Pages = 4;

    /// <summary>The scenario with the correct <see cref="GpuMirror"/>.</summary>
    public static void InvalidateVsService(ExploreContext ctx) => Run(ctx, (device, process) => new GpuMirror(device, process));

    /// <summary>The scenario with the mirror <paramref name="create"/> builds (tests plant bugs this way).</summary>
    public static void Run(ExploreContext ctx, Func<SimDevice, Process, GpuMirror> create)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ArgumentNullException.ThrowIfNull(create);
        var machine = new Machine(new MachineOptions { SystemMemory = 8L << 20, TransparentHugePages = false });
        ctx.Cleanup(machine.Dispose);
        var device = new SimDevice(machine, "gpu0", new SimDeviceOptions { FaultBufferEntries = 8 });
        long baseline = machine.UsedPages;
        Process process = machine.CreateProcess("app");
        ulong buf = process.Mmap(Pages * 4096, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        var model = new int[Pages];
        for (int i = 0; i < Pages; i++)
        {
            model[i] = 100 + i;
            process.Store(buf + ((ulong)i * 4096), model[i]);
        }

        GpuMirror mirror = create(device, process);
        bool oom = ctx.Injects(FaultSite.NonBlockableInvalidate);
        if (oom)
        {
            ctx.Spawn("oom-reaper", () => process.OomKill());
        }

        ctx.Spawn("gpu", () =>
        {
            device.Executor.LaunchOnePerThread(mirror.Instance, 0, Reads(buf));
            mirror.RunToCompletion();
            for (int t = 0; t < Pages; t++)
            {
                if (device.Executor.StateOf(t) != DeviceThreadState.Done) continue;
                int v = (int)device.Executor.ResultOf(t);
                int initial = 100 + t;
                ExploreContext.Check(v == initial || v == 0 || v == model[t] || oom,
                    $"device read {v} from page {t}: neither its initial value {initial}, zero after DONTNEED, nor the last write {model[t]}");
            }
        });
        ctx.Spawn("madvise", () =>
        {
            try
            {
                process.Madvise(buf + 4096, 2 * 4096, Advice.DontNeed);
                model[1] = 0;
                model[2] = 0;
            }
            catch (Exception e) when (oom && (e is ErrnoException || e is InvalidOperationException)) { }
        });
        ctx.Spawn("cpu", () =>
        {
            try
            {
                process.Store(buf + (3 * 4096), 403);
                model[3] = 403;
            }
            catch (ErrnoException e) when (e.Errno == Errno.ENOMEM) { }
            catch (Exception e) when (oom && (ScenarioWorld.IsExpectedCpuFailure(e) || e is InvalidOperationException)) { }
        });
        ctx.AtEnd(() =>
        {
            if (!oom)
            {
                CheckNoStaleMapping(process, mirror, buf);

                // New values everywhere (a DONTNEEDed page faults in a fresh frame), then the device must see them.
                for (int i = 0; i < Pages; i++) process.Store(buf + ((ulong)i * 4096), 500 + i);
                device.Executor.LaunchOnePerThread(mirror.Instance, 0, Reads(buf));
                mirror.RunToCompletion();
                for (int t = 0; t < Pages; t++)
                {
                    int v = (int)device.Executor.ResultOf(t);
                    ExploreContext.Check(v == 500 + t, $"stale device mapping: after the race the device reads {v} from page {t}, the CPU wrote {500 + t}");
                }
            }

            machine.CheckInvariants();
            mirror.Detach();
            process.Exit();
            machine.CheckInvariants();
            ExploreContext.Check(machine.UsedPages == baseline, $"{machine.UsedPages - baseline} pages leaked");
        });
    }

    /// <summary>Every system page the device maps must be the page the CPU maps there now (a stale entry points at a freed or replaced frame).</summary>
    private static void CheckNoStaleMapping(Process process, GpuMirror mirror, ulong buf)
    {
        process.Mm.MmapLock.ReadLock();
        try
        {
            for (int i = 0; i < Pages; i++)
            {
                ulong va = buf + ((ulong)i * 4096);
                if (!mirror.Table.Lookup(va, out DeviceTranslation t) || t.Aperture != DeviceAperture.System) continue;
                Pte pte = process.Mm.EntryAt(va);
                ExploreContext.Check(pte.IsPresent && pte.Pfn == t.Frame,
                    $"stale device mapping: the device maps page {i} to frame 0x{t.Frame:x}, the CPU page table has {(pte.IsPresent ? "0x" + pte.Pfn.ToString("x", System.Globalization.CultureInfo.InvariantCulture) : "nothing")}");
            }
        }
        finally { process.Mm.MmapLock.ReadUnlock(); }
    }

    private static DeviceOp[] Reads(ulong buf)
    {
        var ops = new DeviceOp[Pages];
        for (int i = 0; i < Pages; i++) ops[i] = new DeviceOp(buf + ((ulong)i * 4096), DeviceAccess.Read);
        return ops;
    }
}
