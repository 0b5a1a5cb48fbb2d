using NUnit.Framework;
using Hmm.Runtime.Locking;

namespace Hmm.Runtime.Tests.Locking;

[TestFixture]
public sealed class RwSemaphoreTests : ValidatorFixture
{
    [Test]
    public void TwoReadersAreInsideAtOnce()
    {
        var sem = new RwSemaphore("rw.readers");
        using var bothInside = new Barrier(2);
        int inside = 0;
        int maxInside = 0;

        void Reader()
        {
            sem.ReadLock();
            try
            {
                int now = Interlocked.Increment(ref inside);
                InterlockedMax(ref maxInside, now);
                // Only returns once the other reader also holds the read lock: if readers
                // excluded each other this would never complete.
                Assert.That(bothInside.SignalAndWait(TimeSpan.FromSeconds(30)), Is.True, "other reader never got in");
                Assert.That(sem.IsReadHeldByCurrentThread, Is.True);
                Assert.That(sem.IsWriteHeldByCurrentThread, Is.False);
                bothInside.SignalAndWait();
                Interlocked.Decrement(ref inside);
            }
            finally
            {
                sem.ReadUnlock();
            }
        }

        WorkerThread r1 = WorkerThread.Start("reader 1", Reader);
        WorkerThread r2 = WorkerThread.Start("reader 2", Reader);
        r1.Join();
        r2.Join();

        Assert.That(maxInside, Is.EqualTo(2));
        Assert.That(sem.IsLocked, Is.False);
    }

    [Test]
    public void WriterExcludesReaders()
    {
        var sem = new RwSemaphore("rw.exclude");
        sem.WriteLock();
        bool readerIn = false;
        WorkerThread reader = WorkerThread.Start("reader", () =>
        {
            sem.ReadLock();
            Volatile.Write(ref readerIn, true);
            sem.ReadUnlock();
        });

        bool tried = true;
        WorkerThread.Run("trier", () => tried = sem.TryReadLock());
        WorkerThread.WaitUntil(() => sem.Sleepers == 1, "the reader sleeps");
        Assert.Multiple(() =>
        {
            Assert.That(tried, Is.False);
            Assert.That(Volatile.Read(ref readerIn), Is.False);
            Assert.That(sem.IsWriteLocked, Is.True);
            Assert.That(sem.IsHeldByCurrentThread, Is.True);
        });

        sem.WriteUnlock();
        reader.Join();
        Assert.That(readerIn, Is.True);
    }

    [Test]
    public void WaitingWriterBlocksNewReaders()
    {
        var sem = new RwSemaphore("rw.prefer");
        var order = new List<string>();
        var orderLock = new KernelMutex("rw.prefer.order");
        void Log(string what)
        {
            orderLock.Lock();
            order.Add(what);
            orderLock.Unlock();
        }

        sem.ReadLock();
        WorkerThread writer = WorkerThread.Start("writer", () =>
        {
            sem.WriteLock();
            Log("writer");
            sem.WriteUnlock();
        });
        WorkerThread.WaitUntil(() => sem.WaitingWriters == 1, "the writer waits");

        bool tried = true;
        WorkerThread.Run("trier", () => tried = sem.TryReadLock());
        Assert.That(tried, Is.False, "down_read_trylock fails while a writer waits");

        WorkerThread lateReader = WorkerThread.Start("late reader", () =>
        {
            sem.ReadLock();
            Log("late reader");
            sem.ReadUnlock();
        });
        WorkerThread.WaitUntil(() => sem.Sleepers == 2, "writer and late reader both sleep");
        Assert.That(order, Is.Empty);

        sem.ReadUnlock();
        writer.Join();
        lateReader.Join();
        Assert.That(order, Is.EqualTo(new[] { "writer", "late reader" }));
    }

    [Test]
    public void DowngradeWriteKeepsOutWritersAndLetsReadersIn()
    {
        var sem = new RwSemaphore("rw.downgrade");
        sem.WriteLock();
        bool readerIn = false;
        WorkerThread reader = WorkerThread.Start("reader", () =>
        {
            sem.ReadLock();
            Volatile.Write(ref readerIn, true);
            sem.ReadUnlock();
        });
        WorkerThread.WaitUntil(() => sem.Sleepers == 1, "the reader sleeps");

        sem.DowngradeWrite();

        reader.Join();
        Assert.Multiple(() =>
        {
            Assert.That(readerIn, Is.True);
            Assert.That(sem.IsWriteLocked, Is.False);
            Assert.That(sem.IsLocked, Is.True);
            Assert.That(sem.IsReadHeldByCurrentThread, Is.True);
            Assert.That(sem.IsWriteHeldByCurrentThread, Is.False);
        });

        bool writerGotIn = true;
        WorkerThread.Run("writer", () => writerGotIn = sem.TryWriteLock());
        Assert.That(writerGotIn, Is.False, "still read-held after the downgrade");
        Assert.Throws<KernelBugException>(sem.WriteUnlock, "no longer the writer");

        sem.ReadUnlock();
        Assert.That(sem.IsLocked, Is.False);
    }

    [Test]
    public void DowngradeWithoutWriteLockThrows()
    {
        var sem = new RwSemaphore("rw.downgrade.bad");
        Assert.Throws<KernelBugException>(sem.DowngradeWrite);
        sem.ReadLock();
        Assert.Throws<KernelBugException>(sem.DowngradeWrite);
        sem.ReadUnlock();
    }

    [Test]
    public void UnlockByNonOwnerThrows()
    {
        var sem = new RwSemaphore("rw.nonowner");
        sem.ReadLock();
        try
        {
            var e = Assert.Throws<KernelBugException>(() => WorkerThread.Run("thief", sem.ReadUnlock))!;
            Assert.That(e.Rule, Is.EqualTo("LOCKDEP"));
            Assert.That(e.Message, Does.Contain("bad unlock balance").And.Contain("rw.nonowner"));
            Assert.Throws<KernelBugException>(sem.WriteUnlock, "read holder cannot up_write");
        }
        finally
        {
            sem.ReadUnlock();
        }

        sem.WriteLock();
        try
        {
            Assert.Throws<KernelBugException>(() => WorkerThread.Run("thief", sem.WriteUnlock));
            Assert.Throws<KernelBugException>(sem.ReadUnlock, "writer cannot up_read");
        }
        finally
        {
            sem.WriteUnlock();
        }
    }

    [Test]
    public void TryWriteLockFailsWhileReadHeldElsewhere()
    {
        var sem = new RwSemaphore("rw.trywrite");
        sem.ReadLock();
        bool got = true;
        WorkerThread.Run("writer", () => got = sem.TryWriteLock());
        Assert.That(got, Is.False);
        sem.ReadUnlock();

        WorkerThread.Run("writer", () =>
        {
            got = sem.TryWriteLock();
            sem.WriteUnlock();
        });
        Assert.That(got, Is.True);
    }

    [Test]
    public void NestedSubclassOutOfRangeIsRejected()
    {
        var sem = new RwSemaphore("rw.subclass");
        Assert.Throws<ArgumentOutOfRangeException>(() => sem.WriteLockNested(8));
        Assert.Throws<ArgumentOutOfRangeException>(() => sem.WriteLockNested(-1));
        Assert.That(sem.IsLocked, Is.False);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen = Volatile.Read(ref target);
        while (value > seen)
        {
            int prior = Interlocked.CompareExchange(ref target, value, seen);
            if (prior == seen)
            {
                return;
            }

            seen = prior;
        }
    }
}
