using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Driver;

/// <summary>
/// F.3.3: the same fault storm under UVM's replay policies (drivers.md C.1). Each policy is a DSL
/// declaration (the replay policy is a [FaultBuffer] property); all use 256-entry batches.
/// The storm: 10 000 threads on 16 non-adjacent pages (16 ranges per batch), a 4096-entry ring.
/// </summary>
public sealed class ReplayPolicyTests
{
    private Machine _machine = null!;
    private Process _p = null!;
    private SimDevice _device = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 128L << 20, LockValidation = true });
        _p = _machine.CreateProcess("app");
        _device = new SimDevice(_machine, "gpu0");
    }

    [TearDown]
    public void TearDown() => _machine.Dispose();

    private (KernelRun Run, GpuCounterSnapshot Counters) Storm(IGeneratedGpuDriver gpu, GpuSvm svm)
    {
        Assert.That(gpu.Attach(_device, _p), Is.EqualTo(Errno.Ok));
        ulong buf = _p.Mmap(32 * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        for (int i = 0; i < 32; i++) _p.Store(buf + (ulong)i * Page.Size, (ulong)i);
        var storm = GpuWorkloads.FaultStorm(buf, pages: 32) with { StrideBytes = 2 * Page.Size };
        var run = svm.Run(storm);
        Assert.That(run.Completed && run.ThreadsDone == 10_000, Is.True);
        Assert.That(_device.Executor.ResultOf(9_999), Is.EqualTo((ulong)(9_999 * 2 % 32)));
        var c = svm.Snapshot();
        Assert.That(svm.Unload(), Is.EqualTo(Errno.Ok));
        _p.Exit();
        _machine.CheckInvariants();
        return (run, c);
    }

    [Test]
    public void Batch_replays_once_per_batch()
    {
        var gpu = new BatchReplayGpu();
        var (_, c) = Storm(gpu, gpu.Svm);
        Assert.Multiple(() =>
        {
            Assert.That(c.Faults, Is.EqualTo(4096));
            Assert.That(c.Batches, Is.EqualTo(16), "4096 entries in batches of 256");
            Assert.That(c.Replays, Is.EqualTo(16));
            Assert.That(c.Duplicates, Is.EqualTo(4096 - 16 * 16), "16 pages per batch, the rest duplicates");
        });
    }

    [Test]
    public void Block_replays_after_every_serviced_range()
    {
        var gpu = new BlockReplayGpu();
        var (_, c) = Storm(gpu, gpu.Svm);
        Assert.Multiple(() =>
        {
            Assert.That(c.Batches, Is.EqualTo(16), "BLOCK still fetches the ring in batches of 256");
            Assert.That(c.Replays, Is.EqualTo(gpu.RangesServiced), "one replay per serviced range");
            Assert.That(c.Replays, Is.EqualTo(16 * 16), "16 ranges (pages) in each of the 16 batches");
            Assert.That(c.Serviced, Is.EqualTo(16 * 16));
        });
    }

    [Test]
    public void BatchFlush_flushes_the_stale_duplicates_and_replays_once()
    {
        var gpu = new BatchFlushReplayGpu();
        var (_, c) = Storm(gpu, gpu.Svm);
        Assert.Multiple(() =>
        {
            Assert.That(c.Replays, Is.EqualTo(1), "the flush discarded the other 3840 entries");
            Assert.That(c.Faults, Is.EqualTo(256), "only the first batch was serviced");
            Assert.That(c.Serviced, Is.EqualTo(16));
        });
    }

    [Test]
    public void Once_replays_a_single_time_after_draining()
    {
        var gpu = new OnceReplayGpu();
        var (_, c) = Storm(gpu, gpu.Svm);
        Assert.Multiple(() =>
        {
            Assert.That(c.Batches, Is.EqualTo(16));
            Assert.That(c.Replays, Is.EqualTo(1));
        });
    }

    [Test]
    public void Nouveau_fetches_the_whole_ring_in_one_batch()
    {
        var gpu = new NouveauGpu();
        var (_, c) = Storm(gpu, gpu.Svm);
        Assert.Multiple(() =>
        {
            Assert.That(c.Batches, Is.EqualTo(1));
            Assert.That(c.Replays, Is.EqualTo(1));
            Assert.That(c.Serviced, Is.EqualTo(16));
        });
    }

    [Test]
    public void The_bottom_half_stops_after_the_batch_cap_and_the_next_pass_resumes()
    {
        var gpu = new BatchReplayGpu(GpuPolicyMode.Uvm, new UvmPolicyOptions { MaxBatchesPerService = 4 });
        var (run, c) = Storm(gpu, gpu.Svm);
        Assert.That(run.Completed, Is.True, "the first batch's replay already resumed every thread");
        Assert.That(c.Batches, Is.EqualTo(4), "at most 4 batches per bottom half");
        Assert.That(_device.Faults.Count, Is.EqualTo(4096 - 4 * 256), "the rest stays queued for the next bottom half");
    }
}
