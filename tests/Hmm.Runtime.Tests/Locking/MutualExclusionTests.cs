using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using Hmm.Runtime.Locking;
using SpinLock = Hmm.Runtime.Locking.SpinLock;

namespace Hmm.Runtime.Tests.Locking;

[TestFixture]
public sealed class MutualExclusionTests : ValidatorFixture
{
    private const int Threads = 4;
    private const int Increments = 100_000;

    /// <summary>Each test sets the validator itself.</summary>
    protected override bool? Validation => null;

    [TestCase(false)]
    [TestCase(true)]
    public void KernelMutexExcludesUnderContention(bool validate)
    {
        LockValidator.Enabled = validate;
        var m = new KernelMutex("mx.counter");
        int counter = 0;
        RunContended(() =>
        {
            m.Lock();
            counter++;
            m.Unlock();
        });

        Assert.That(counter, Is.EqualTo(Threads * Increments));
        Assert.That(m.IsLocked, Is.False);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void SpinLockExcludesUnderContention(bool validate)
    {
        LockValidator.Enabled = validate;
        var s = new SpinLock("mx.spin");
        int counter = 0;
        RunContended(() =>
        {
            s.Lock();
            counter++;
            s.Unlock();
        });

        Assert.That(counter, Is.EqualTo(Threads * Increments));
        Assert.That(s.IsLocked, Is.False);
    }

    [Test]
    public void RwSemaphoreWritersExcludeEachOtherAndReaders()
    {
        var sem = new RwSemaphore("mx.sem");
        long a = 0;
        long b = 0;
        int torn = 0;
        RunContended(() =>
        {
            sem.WriteLock();
            a++;
            b++;
            sem.WriteUnlock();

            sem.ReadLock();
            if (a != b)
            {
                Interlocked.Increment(ref torn);
            }

            sem.ReadUnlock();
        }, Increments / 10);

        Assert.That(a, Is.EqualTo(Threads * (Increments / 10)));
        Assert.That(b, Is.EqualTo(a));
        Assert.That(torn, Is.Zero, "a reader saw a half-done write");
        Assert.That(sem.IsLocked, Is.False);
    }

    [Test]
    public void TryLockFailsWhileAnotherThreadHoldsIt()
    {
        var m = new KernelMutex("mx.try.m");
        var s = new SpinLock("mx.try.s");
        m.Lock();
        s.Lock();
        try
        {
            bool mutexTaken = true;
            bool spinTaken = true;
            WorkerThread.Run("other", () =>
            {
                mutexTaken = m.TryLock();
                spinTaken = s.TryLock();
            });

            Assert.Multiple(() =>
            {
                Assert.That(mutexTaken, Is.False);
                Assert.That(spinTaken, Is.False);
                Assert.That(m.IsHeldByCurrentThread, Is.True);
                Assert.That(s.IsHeldByCurrentThread, Is.True);
            });
        }
        finally
        {
            s.Unlock();
            m.Unlock();
        }

        Assert.That(m.TryLock(), Is.True, "free again");
        m.Unlock();
    }

    [Test]
    public void OwnershipIsPerThread()
    {
        var m = new KernelMutex("mx.own");
        m.Lock();
        try
        {
            bool heldThere = true;
            bool lockedThere = false;
            WorkerThread.Run("other", () =>
            {
                heldThere = m.IsHeldByCurrentThread;
                lockedThere = m.IsLocked;
            });
            Assert.That(heldThere, Is.False);
            Assert.That(lockedThere, Is.True);
            Assert.That(m.IsHeldByCurrentThread, Is.True);
        }
        finally
        {
            m.Unlock();
        }

        Assert.That(m.IsLocked, Is.False);
    }

    [Test]
    public void UnlockByNonOwnerThrows()
    {
        var m = new KernelMutex("mx.nonowner.m");
        var s = new SpinLock("mx.nonowner.s");
        m.Lock();
        s.Lock();
        try
        {
            var e1 = Assert.Throws<KernelBugException>(() => WorkerThread.Run("thief", m.Unlock))!;
            var e2 = Assert.Throws<KernelBugException>(() => WorkerThread.Run("thief", s.Unlock))!;
            Assert.That(e1.Rule, Is.EqualTo("LOCKDEP"));
            Assert.That(e1.Message, Does.Contain("bad unlock balance").And.Contain("mx.nonowner.m"));
            Assert.That(e2.Message, Does.Contain("mx.nonowner.s"));
            Assert.That(m.IsHeldByCurrentThread && s.IsHeldByCurrentThread, Is.True, "still held by the owner");
        }
        finally
        {
            s.Unlock();
            m.Unlock();
        }
    }

    [Test]
    public void UnlockingAnUnlockedLockThrows()
    {
        Assert.Throws<KernelBugException>(new KernelMutex("mx.unlocked.m").Unlock);
        Assert.Throws<KernelBugException>(new SpinLock("mx.unlocked.s").Unlock);
        Assert.Throws<KernelBugException>(new RwSemaphore("mx.unlocked.r").ReadUnlock);
        Assert.Throws<KernelBugException>(new RwSemaphore("mx.unlocked.w").WriteUnlock);
        Assert.That(LockValidator.HeldLockCount, Is.Zero);
    }

    [Test]
    public void SelfDeadlockIsDetectedEvenWithValidationOff()
    {
        LockValidator.Enabled = false;
        var m = new KernelMutex("mx.self.m");
        var s = new SpinLock("mx.self.s");
        var w = new RwSemaphore("mx.self.w");
        m.Lock();
        s.Lock();
        w.WriteLock();
        try
        {
            Assert.That(Assert.Throws<KernelBugException>(m.Lock)!.Message, Does.Contain("recursive locking"));
            Assert.That(Assert.Throws<KernelBugException>(s.Lock)!.Message, Does.Contain("recursive locking"));
            Assert.That(Assert.Throws<KernelBugException>(w.ReadLock)!.Message, Does.Contain("recursive locking"));
            Assert.That(Assert.Throws<KernelBugException>(w.WriteLock)!.Message, Does.Contain("recursive locking"));
            Assert.That(LockValidator.HeldLockCount, Is.EqualTo(3), "failed acquisitions left no trace");
        }
        finally
        {
            w.WriteUnlock();
            s.Unlock();
            m.Unlock();
        }
    }

    [Test]
    public void LocksMayBeReleasedOutOfOrder()
    {
        var a = new KernelMutex("mx.ooo.a");
        var b = new KernelMutex("mx.ooo.b");
        a.Lock();
        b.Lock();
        a.Unlock();
        Assert.That(b.IsHeldByCurrentThread, Is.True);
        Assert.That(a.IsLocked, Is.False);
        b.Unlock();
        Assert.That(LockValidator.HeldLockCount, Is.Zero);
    }

    [Test]
    public void UncontendedAcquireAndReleaseAllocateNothing()
    {
        LockValidator.Enabled = false;
        var m = new KernelMutex("mx.alloc.m");
        var s = new SpinLock("mx.alloc.s");
        var r = new RwSemaphore("mx.alloc.r");
        void Cycle()
        {
            m.Lock();
            s.Lock();
            s.Unlock();
            m.Unlock();
            r.ReadLock();
            r.ReadUnlock();
            r.WriteLock();
            r.DowngradeWrite();
            r.ReadUnlock();
        }

        // Warm-up creates this thread's held-lock stack.
        Assert.That(Allocations.Measure(Cycle, iterations: 1000), Is.Zero);
    }

    private static void RunContended(Action body, int iterations = Increments)
    {
        using var start = new Barrier(Threads);
        var workers = new WorkerThread[Threads];
        for (int t = 0; t < Threads; t++)
        {
            workers[t] = WorkerThread.Start("contender " + t, () =>
            {
                start.SignalAndWait();
                for (int i = 0; i < iterations; i++)
                {
                    body();
                }
            });
        }

        foreach (WorkerThread w in workers)
        {
            w.Join();
        }
    }
}
