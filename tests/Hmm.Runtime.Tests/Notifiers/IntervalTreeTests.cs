using Hmm.Runtime.Tests.Support;
using Hmm.Runtime.Locking;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Notifiers;

/// <summary>The augmented interval tree behind dispatch (reference/kernel-hmm.md A.6 itree, ARCHITECTURE §8).</summary>
[TestFixture]
public sealed class IntervalTreeTests
{
    // A.6: the overlap walk returns exactly the intersecting intervals, in start order,
    // against a brute-force list, over random inserts, removals and queries.
    [Test]
    public void OverlapWalk_MatchesBruteForce([Range(1, 40)] int seed)
    {
        var random = new Random(seed);
        var tree = new IntervalTree();
        var live = new List<IntervalNode>();
        ulong span = seed % 3 == 0 ? 1UL << 20 : ulong.MaxValue;   // dense and sparse cases
        for (int step = 0; step < 400; step++)
        {
            if (live.Count == 0 || random.Next(3) != 0)
            {
                ulong start = RandomAddress(random, span);
                ulong len = (ulong)random.Next(1, 1 << 16);
                ulong last = start > ulong.MaxValue - len ? ulong.MaxValue : start + len;
                var node = new IntervalNode(IntervalNodeKind.Monitor) { Start = start, Last = last };
                tree.Insert(node);
                live.Add(node);
            }
            else
            {
                int i = random.Next(live.Count);
                tree.Remove(live[i]);
                live.RemoveAt(i);
            }
            tree.Validate();
            Assert.That(tree.Count, Is.EqualTo(live.Count));

            for (int q = 0; q < 5; q++)
            {
                ulong qs = RandomAddress(random, span);
                ulong ql = random.Next(4) == 0 ? ulong.MaxValue : Math.Max(qs, qs + (ulong)random.Next(0, 1 << 18));
                var expected = live.Where(n => n.Start <= ql && qs <= n.Last).Select(n => n.Start).OrderBy(s => s).ToList();
                var actual = new List<ulong>();
                for (IntervalNode? n = tree.First(qs, ql); n is not null; n = IntervalTree.Next(n, qs, ql))
                {
                    Assert.That(n.Overlaps(qs, ql), Is.True);
                    actual.Add(n.Start);
                }
                Assert.That(actual, Is.EqualTo(expected), $"query [0x{qs:x}, 0x{ql:x}] seed {seed} step {step}");
            }
        }
        foreach (var n in live) tree.Remove(n);
        Assert.That(tree.IsEmpty, Is.True);
    }

    // A.6: equal starts come back in insertion order (stable), and a full walk is sorted.
    [Test]
    public void EqualStarts_KeepInsertionOrder()
    {
        var tree = new IntervalTree();
        var nodes = Enumerable.Range(0, 50).Select(i => new IntervalNode(IntervalNodeKind.Monitor) { Start = 10, Last = 10 + (ulong)i }).ToList();
        foreach (var n in nodes) tree.Insert(n);
        var walked = new List<IntervalNode>();
        for (IntervalNode? n = tree.First(0, ulong.MaxValue); n is not null; n = IntervalTree.Next(n, 0, ulong.MaxValue)) walked.Add(n);
        Assert.That(walked, Is.EqualTo(nodes));
    }

    private static ulong RandomAddress(Random random, ulong span)
        => span == ulong.MaxValue ? (ulong)random.NextInt64() << 1 : (ulong)random.NextInt64((long)span);
}

/// <summary>ARCHITECTURE §8: notifier dispatch allocates nothing after warm-up.</summary>
[TestFixture]
[NonParallelizable]
public sealed class NotifierDispatchAllocationTests
{
    // §8 / B.3: start+end over 10,000 intervals (hitting one, and hitting none) allocates nothing.
    [Test]
    public void StartEnd_AfterWarmUp_AllocatesNothing()
    {
        bool validator = LockValidator.Enabled;
        LockValidator.Enabled = false;   // measure the dispatch path, not the validator's bookkeeping
        try
        {
            using var machine = new Machine();
            AddressSpace mm = machine.CreateProcess("p").Mm;
            var ops = new CountingOps();
            var notifiers = new IntervalNotifier[10_000];
            for (int i = 0; i < notifiers.Length; i++)
            {
                notifiers[i] = new IntervalNotifier(ops);
                Assert.That(notifiers[i].Insert(mm, (ulong)i * 0x10000, 0x1000), Is.EqualTo(Errno.Ok));
            }
            var hook = mm.NotifierHook!;
            var hit = new NotifierRange(mm, 5000UL * 0x10000, 5000UL * 0x10000 + 0x1000, NotifyEvent.Clear, blockable: true);
            var miss = new NotifierRange(mm, 5000UL * 0x10000 + 0x4000, 5000UL * 0x10000 + 0x5000, NotifyEvent.Clear, blockable: false);
            long allocated = Allocations.Measure(() => Cycle(hook, hit, miss), iterations: 10_000, warmups: 100, attempts: 1);

            Assert.That(allocated, Is.Zero);
            Assert.That(ops.Calls, Is.EqualTo(10_100));
            foreach (var n in notifiers) n.Remove();
            ((MmuNotifierSubscriptions)hook).CheckInvariants();
        }
        finally
        {
            LockValidator.Enabled = validator;
        }
    }

    private static void Cycle(IMmuNotifierHook hook, in NotifierRange hit, in NotifierRange miss)
    {
        hook.InvalidateRangeStart(hit);
        hook.InvalidateRangeEnd(hit);
        if (hook.InvalidateRangeStart(miss)) hook.InvalidateRangeEnd(miss);
    }

    private sealed class CountingOps : IIntervalNotifierOps
    {
        public int Calls;

        public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
        {
            Calls++;
            notifier.SetSeq(curSeq);
            return true;
        }
    }
}
