using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mirror;
using Hmm.Runtime.Mm;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Workloads;

/// <summary>
/// The kernel runner over the runtime's executor: launch, run, service, replay until no thread is
/// parked. The service here is a test stand-in (it maps pinned pages straight into the device page
/// table, without HMM) so the runner is tested apart from any driver.
/// </summary>
public sealed class KernelRunnerTests
{
    private Machine _machine = null!;
    private Process _process = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 64L << 20, LockValidation = true });
        _process = _machine.CreateProcess("app");
    }

    [TearDown]
    public void TearDown() => _machine.Dispose();

    /// <summary>Maps faulting pages it knows (pinned CPU pages) with full permissions; cancels the rest.</summary>
    private sealed class PinnedPageService(SimDevice device, DevicePageTable table, ulong buffer, IReadOnlyList<ulong> pfns) : IGpuFaultService
    {
        private readonly FaultEntry[] _batch = new FaultEntry[256];
        public int Batches { get; private set; }

        public int ServiceFaults()
        {
            int total = 0;
            Span<ulong> word = stackalloc ulong[1];
            while (true)
            {
                int n = device.FetchFaults(_batch);
                if (n == 0) break;
                Batches++;
                total += n;
                int ok = 0;
                foreach (var f in _batch.AsSpan(0, n))
                {
                    long page = (long)((f.Address - buffer) >> Page.Shift);
                    if (f.Address >= buffer && page < pfns.Count)
                    {
                        word[0] = HmmPfn.Make(pfns[(int)page], write: true);
                        table.Install(f.Address, word, DeviceAperture.System, atomic: true);
                        ok++;
                    }
                    else
                    {
                        device.Cancel(f);
                    }
                }
                if (ok > 0) device.Replay();
            }
            return total;
        }
    }

    private (SimDevice Device, int Instance, DevicePageTable Table) Gpu()
    {
        var device = new SimDevice(_machine, "gpu0");
        var table = new DevicePageTable();
        return (device, device.Attach(table), table);
    }

    [Test]
    public void A_streaming_write_kernel_runs_to_completion_and_its_data_reaches_cpu_memory()
    {
        ulong buf = _process.Mmap(4 * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        var (device, instance, table) = Gpu();
        using (var pins = _process.PinUserPages(buf, 4, write: true, longTerm: false))
        {
            var service = new PinnedPageService(device, table, buf, pins.Pfns);
            var kernel = GpuWorkloads.Stream(buf, 4 * Page.Size, threads: 64, DeviceAccess.Write, value: 0xABCD);
            var run = KernelRunner.Run(device, instance, kernel.Build(), service);
            Assert.Multiple(() =>
            {
                Assert.That(run.Completed, Is.True);
                Assert.That(run.ThreadsDone, Is.EqualTo(64));
                Assert.That(run.ThreadsFailed, Is.Zero);
                // Coalesced: the 64 threads sweep each page together, so every thread faults once per page.
                Assert.That(run.FaultsRaised, Is.EqualTo(4 * 64));
                Assert.That(run.OpsExecuted, Is.EqualTo(4 * Page.Size / 8));
                Assert.That(run.Passes, Is.EqualTo(5), "one pass per page plus the final one");
                Assert.That(service.Batches, Is.EqualTo(4));
                Assert.That(run.SimulatedNs, Is.GreaterThanOrEqualTo(device.Options.Costs.KernelLaunchNs + device.Options.Costs.FaultBatchNs));
            });
        }
        for (ulong off = 0; off < 4 * Page.Size; off += 8) Assert.That(_process.Load<ulong>(buf + off), Is.EqualTo(0xABCDUL));
        table.Clear(0, DevicePageTable.VaLimit);
        _machine.CheckInvariants();
    }

    [Test]
    public void Threads_whose_faults_are_cancelled_fail_and_the_run_still_completes()
    {
        ulong buf = _process.Mmap(2 * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        var (device, instance, table) = Gpu();
        using (var pins = _process.PinUserPages(buf, 1, write: true, longTerm: false))
        {
            var service = new PinnedPageService(device, table, buf, pins.Pfns);
            var run = KernelRunner.Run(device, instance, GpuWorkloads.ReadEveryPage(buf, 2 * Page.Size).Build(), service);
            Assert.That(run, Is.EqualTo(run with { Completed = true, ThreadsDone = 1, ThreadsFailed = 1 }));
            Assert.That(device.Meters.Cancels, Is.EqualTo(1));
        }
        table.Clear(0, DevicePageTable.VaLimit);
        _machine.CheckInvariants();
    }

    private sealed class DoNothing : IGpuFaultService
    {
        public int ServiceFaults() => 0;
    }

    [Test]
    public void A_run_whose_faults_are_never_serviced_stops_as_incomplete()
    {
        ulong buf = _process.Mmap(Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        var (device, instance, _) = Gpu();
        var run = KernelRunner.Run(device, instance, GpuWorkloads.ReadEveryPage(buf, Page.Size).Build(), new DoNothing());
        Assert.That(run.Completed, Is.False);
        Assert.That(run.Passes, Is.EqualTo(KernelRunner.StallLimit));
        Assert.That(device.Executor.ParkedCount, Is.EqualTo(1));
        _machine.CheckInvariants();
    }

    [Test]
    public void Remote_accesses_of_finished_threads_feed_the_access_counters()
    {
        ulong buf = _process.Mmap(Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        var (device, instance, table) = Gpu();
        var counters = new GpuDriverCounters();
        var ac = new AccessCounters(256, counters);
        using (var pins = _process.PinUserPages(buf, 1, write: true, longTerm: false))
        {
            var service = new PinnedPageService(device, table, buf, pins.Pfns);
            var run = KernelRunner.Run(device, instance, GpuWorkloads.RemoteReads(buf, Page.Size, threads: 100, opsPerThread: 3).Build(), service, ac);
            Assert.That(run.Completed, Is.True);
        }
        Assert.That(ac.Accesses, Is.EqualTo(300));
        Assert.That(counters.AccessCounterNotifications, Is.EqualTo(1), "300 accesses to one 2 MiB region: one notification at 256");
        Assert.That(ac.CountOf(buf), Is.EqualTo(44));
        table.Clear(0, DevicePageTable.VaLimit);
        _machine.CheckInvariants();
    }
}
