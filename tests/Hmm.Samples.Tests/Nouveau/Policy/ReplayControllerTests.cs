using Hmm.Dsl;
using Hmm.Samples.Nouveau;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Nouveau.Policy;

/// <summary>UVM's replay policies and per-service caps (drivers.md C.1, C.9) and nouveau's one replay per batch (A.4).</summary>
public sealed class ReplayControllerTests
{
    [Test]
    public void Batch_replays_after_every_batch_without_flushing()
    {
        var r = new ReplayController(ReplayPolicy.Batch);
        r.BeginService();
        Assert.That(r.AfterBlock(), Is.False);
        Assert.That(r.AfterBatch(256, 200, 0), Is.EqualTo(new ReplayStep(true, FaultFlush.None, true)));
        Assert.That(r.EndService(), Is.False, "already replayed");
        Assert.That(r.Replays, Is.EqualTo(1));
    }

    [Test]
    public void BatchFlush_rereads_put_only_when_more_than_half_the_batch_were_duplicates()
    {
        var r = new ReplayController(ReplayPolicy.BatchFlush);
        r.BeginService();
        Assert.That(r.AfterBatch(100, 51, 0).Flush, Is.EqualTo(FaultFlush.UpdatePut));
        Assert.That(r.AfterBatch(100, 50, 0).Flush, Is.EqualTo(FaultFlush.CachedPut), "exactly 50 % is not more than 50 %");
        Assert.That(r.AfterBatch(100, 0, 0), Is.EqualTo(new ReplayStep(true, FaultFlush.CachedPut, true)));
    }

    [Test]
    public void Block_replays_per_serviced_block_and_not_per_batch()
    {
        var r = new ReplayController(ReplayPolicy.Block);
        r.BeginService();
        Assert.That(r.AfterBlock(), Is.True);
        Assert.That(r.AfterBlock(), Is.True);
        Assert.That(r.AfterBatch(10, 0, 0).Replay, Is.False);
        Assert.That(r.EndService(), Is.False);
        Assert.That(r.Replays, Is.EqualTo(2));
    }

    [Test]
    public void Once_replays_a_single_time_at_the_end_of_the_service()
    {
        var r = new ReplayController(ReplayPolicy.Once);
        r.BeginService();
        for (int i = 0; i < 3; i++) Assert.That(r.AfterBatch(256, 0, 0).Replay, Is.False);
        Assert.That(r.EndService(), Is.True);
        Assert.That(r.EndService(), Is.False);
        Assert.That(r.Replays, Is.EqualTo(1));
    }

    [Test]
    public void A_service_stops_after_20_batches()
    {
        var r = new ReplayController(ReplayPolicy.BatchFlush);
        r.BeginService();
        for (int i = 1; i < 20; i++) Assert.That(r.AfterBatch(256, 0, 0).Continue, Is.True, $"batch {i}");
        Assert.That(r.AfterBatch(256, 0, 0).Continue, Is.False);
        r.BeginService();
        Assert.That(r.AfterBatch(256, 0, 0).Continue, Is.True, "the cap is per bottom half");
    }

    [Test]
    public void A_service_stops_after_5_batches_with_throttled_faults()
    {
        var r = new ReplayController(ReplayPolicy.Batch);
        r.BeginService();
        for (int i = 1; i < 5; i++)
        {
            Assert.That(r.AfterBatch(256, 0, 1).Continue, Is.True);
            Assert.That(r.AfterBatch(256, 0, 0).Continue, Is.True, "unthrottled batches do not count");
        }
        Assert.That(r.AfterBatch(256, 0, 3).Continue, Is.False);
    }

    [Test]
    public void At_least_one_replay_per_service_even_when_nothing_replayed_yet()
    {
        var r = new ReplayController(ReplayPolicy.Block);
        r.BeginService();
        Assert.That(r.EndService(), Is.True);
    }

    [Test]
    public void Nouveau_replays_once_per_batch_with_no_cap()
    {
        var r = ReplayController.Nouveau;
        r.BeginService();
        for (int i = 0; i < 100; i++) Assert.That(r.AfterBatch(4096, 0, 0), Is.EqualTo(new ReplayStep(true, FaultFlush.None, true)));
    }

    [Test]
    public void The_controller_follows_the_run_options()
    {
        var r = ReplayController.For(new UvmPolicyOptions { ReplayPolicy = ReplayPolicy.Batch, MaxBatchesPerService = 2, ReplayUpdatePutRatioPercent = 10 });
        Assert.That(r.Policy, Is.EqualTo(ReplayPolicy.Batch));
        r.BeginService();
        Assert.That(r.AfterBatch(1, 0, 0).Continue, Is.True);
        Assert.That(r.AfterBatch(1, 0, 0).Continue, Is.False);
        Assert.That(ReplayController.For(UvmPolicyOptions.Default).Policy, Is.EqualTo(ReplayPolicy.BatchFlush));
    }
}
