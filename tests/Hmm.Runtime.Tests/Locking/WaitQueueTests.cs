using System.Runtime.CompilerServices;
using NUnit.Framework;
using Hmm.Runtime.Locking;
using SpinLock = Hmm.Runtime.Locking.SpinLock;

namespace Hmm.Runtime.Tests.Locking;

[TestFixture]
public sealed class WaitQueueTests : ValidatorFixture
{
    [Test]
    public void ConditionAlreadyTrueReturnsAtOnce()
    {
        var wq = new WaitQueue("wq.ready");
        int calls = 0;
        wq.WaitEvent(0, _ => { calls++; return true; });
        Assert.That(calls, Is.EqualTo(1));
        Assert.That(wq.HasWaiters, Is.False);
    }

    [Test]
    public void WakeUpAllReleasesWaiterOnlyOnceConditionIsTrue()
    {
        var wq = new WaitQueue("wq.flag");
        var box = new StrongBox<bool>();
        WorkerThread waiter = WorkerThread.Start("waiter", () => wq.WaitEvent(box, static b => Volatile.Read(ref b.Value)));
        WorkerThread.WaitUntil(() => wq.WaiterCount == 1, "the waiter sleeps");

        wq.WakeUpAll(); // condition still false: the waiter must go back to sleep
        WorkerThread.WaitUntil(() => wq.WaiterCount == 1, "the waiter sleeps again");
        Assert.That(waiter.IsAlive, Is.True);

        Volatile.Write(ref box.Value, true);
        wq.WakeUpAll();
        waiter.Join();
        Assert.That(wq.HasWaiters, Is.False);
    }

    [Test]
    public void AllWaitersAreWoken()
    {
        var wq = new WaitQueue("wq.all");
        var box = new StrongBox<bool>();
        var waiters = new WorkerThread[3];
        for (int i = 0; i < waiters.Length; i++)
        {
            waiters[i] = WorkerThread.Start("waiter " + i, () => wq.WaitEvent(box, static b => Volatile.Read(ref b.Value)));
        }

        WorkerThread.WaitUntil(() => wq.WaiterCount == 3, "all three sleep");
        Volatile.Write(ref box.Value, true);
        wq.WakeUpAll();
        foreach (WorkerThread w in waiters)
        {
            w.Join();
        }
    }

    [Test]
    public void NoWakeUpIsMissedWhenWakerRacesWaiter()
    {
        var wq = new WaitQueue("wq.race");
        var seq = new StrongBox<int>();
        const int Rounds = 2_000;
        WorkerThread waiter = WorkerThread.Start("waiter", () =>
        {
            for (int i = 1; i <= Rounds; i++)
            {
                wq.WaitEvent((seq, i), static s => Volatile.Read(ref s.seq.Value) >= s.i);
            }
        });
        WorkerThread waker = WorkerThread.Start("waker", () =>
        {
            for (int i = 1; i <= Rounds; i++)
            {
                Volatile.Write(ref seq.Value, i);
                wq.WakeUpAll();
            }
        });

        waker.Join();
        waiter.Join(); // hangs (and fails on the join timeout) if a wake-up were lost
    }

    [Test]
    public void WaitingUnderSpinLockIsReported()
    {
        var wq = new WaitQueue("wq.atomic");
        var spin = new SpinLock("wq.atomic.spin");
        spin.Lock();
        try
        {
            var e = Assert.Throws<KernelBugException>(() => wq.WaitEvent(0, static _ => true))!;
            Assert.That(e.Message, Does.Contain("sleeping function called from invalid context").And.Contain("wq.atomic"));
        }
        finally
        {
            spin.Unlock();
        }

        Assert.DoesNotThrow(() => wq.WaitEvent(0, static _ => true));
    }
}
