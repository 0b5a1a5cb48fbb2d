using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Notifiers;

/// <summary>Invalidations, inserts, removes, readers, range locks and monitors racing on one mm (reference/kernel-hmm.md A.7, B.1, B.2).</summary>
[TestFixture]
public sealed class NotifierConcurrencyTests
{
    // B.1: after remove returns no callback runs; A.7: the mm ends idle with seq even and a sound tree.
    [Test]
    public void RacingInvalidationsInsertsRemovesAndReaders_KeepTheProtocol()
    {
        using var machine = new Machine();
        AddressSpace mm = machine.CreateProcess("p").Mm;
        var anchor = new IntervalNotifier(new GuardedOps());
        Assert.That(anchor.Insert(mm, 0, 0x100000), Is.EqualTo(Errno.Ok));
        var hook = (MmuNotifierSubscriptions)mm.NotifierHook!;
        var retired = new List<GuardedOps>();
        var deadline = DateTime.UtcNow.AddMilliseconds(400);
        var workers = new List<TestThread>();

        for (int w = 0; w < 2; w++)
        {
            int seed = w;
            workers.Add(TestThread.Start(() =>
            {
                var random = new Random(seed);
                while (DateTime.UtcNow < deadline)
                {
                    ulong start = (ulong)random.Next(0, 256) * 0x1000;
                    var range = new NotifierRange(mm, start, start + (ulong)random.Next(1, 16) * 0x1000, NotifyEvent.Clear, random.Next(4) != 0);
                    if (hook.InvalidateRangeStart(range)) hook.InvalidateRangeEnd(range);
                }
            }));
        }
        workers.Add(TestThread.Start(() =>
        {
            var random = new Random(7);
            while (DateTime.UtcNow < deadline)
            {
                var ops = new GuardedOps();
                var n = new IntervalNotifier(ops);
                ulong start = (ulong)random.Next(0, 256) * 0x1000;
                Assert.That(n.Insert(mm, start, 0x4000), Is.EqualTo(Errno.Ok));
                ulong seq = n.ReadBegin();
                _ = n.ReadRetry(seq);
                n.Remove();
                ops.Removed = true;
                retired.Add(ops);
            }
        }));
        workers.Add(TestThread.Start(() =>
        {
            var random = new Random(11);
            while (DateTime.UtcNow < deadline)
            {
                ulong start = (ulong)random.Next(0, 256) * 0x1000;
                using (RangeLock.Acquire(mm, start, start + 0x2000))
                using (var monitor = RangeMonitor.Register(mm, start, start + 0x2000))
                {
                    Thread.Yield();
                    monitor.Revalidate();
                }
            }
        }));
        workers.Add(TestThread.Start(() =>
        {
            while (DateTime.UtcNow < deadline)
            {
                ulong seq = anchor.ReadBegin();
                Assert.That(seq % 2, Is.EqualTo(1UL), "interval seqs are always odd");
            }
        }));

        foreach (var worker in workers) worker.AssertCompletes();
        Assert.That(retired, Is.Not.Empty);
        Assert.That(retired.Count(o => o.CalledAfterRemove), Is.Zero, "a callback ran after remove returned");
        Assert.That(hook.ActiveInvalidateRanges, Is.Zero);
        Assert.That(hook.Seq % 2, Is.Zero);
        anchor.Remove();
        Assert.That(hook.IntervalCount, Is.Zero);
        hook.CheckInvariants();
        machine.CheckInvariants();
    }

    private sealed class GuardedOps : IIntervalNotifierOps
    {
        private volatile bool _removed;
        private volatile bool _calledAfterRemove;

        public bool Removed { get => _removed; set => _removed = value; }

        public bool CalledAfterRemove => _calledAfterRemove;

        public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
        {
            if (_removed) _calledAfterRemove = true;
            if (!range.Blockable && Random.Shared.Next(8) == 0) return false;
            notifier.SetSeq(curSeq);
            return true;
        }
    }
}
