using NUnit.Framework;
using System.Runtime.CompilerServices;
using Hmm.Runtime.Locking;
using SpinLock = Hmm.Runtime.Locking.SpinLock;

namespace Hmm.Runtime.Tests.Locking;

[TestFixture]
public sealed class LockValidatorTests : ValidatorFixture
{
    [Test]
    public void AbBaInversionAcrossSequentialThreadsIsReportedWithBothSites()
    {
        var a = new KernelMutex("inv.A");
        var b = new KernelMutex("inv.B");

        WorkerThread.Run("first", () => TakeAThenB(a, b));
        var error = Assert.Throws<KernelBugException>(() => WorkerThread.Run("second", () => TakeBThenA(a, b)))!;
        TestContext.Out.WriteLine(error.Message);

        Assert.Multiple(() =>
        {
            Assert.That(error.Rule, Is.EqualTo("LOCKDEP"));
            Assert.That(error.Message, Does.Contain("possible circular locking dependency"));
            Assert.That(error.Message, Does.Contain("'inv.A'").And.Contain("'inv.B'"));
            Assert.That(error.Message, Does.Contain(nameof(TakeAThenB)), "site of the recorded A -> B edge");
            Assert.That(error.Message, Does.Contain(nameof(TakeBThenA)), "site of the current acquisition");
            Assert.That(a.IsLocked, Is.False, "the failed acquisition took nothing");
            Assert.That(b.IsLocked, Is.False);
        });
    }

    [Test]
    public void AbBaInversionIsNotReportedWhenValidationIsOff()
    {
        LockValidator.Enabled = false;
        var a = new KernelMutex("off.A");
        var b = new KernelMutex("off.B");

        WorkerThread.Run("first", () => TakeAThenB(a, b));

        Assert.DoesNotThrow(() => WorkerThread.Run("second", () => TakeBThenA(a, b)));
        Assert.That(LockValidator.HasDependency("off.A", "off.B"), Is.False, "nothing recorded while off");
    }

    [Test]
    public void ConsistentOrderIsRecordedAndAccepted()
    {
        var a = new KernelMutex("ok.A");
        var b = new SpinLock("ok.B");

        for (int i = 0; i < 3; i++)
        {
            a.Lock();
            b.Lock();
            b.Unlock();
            a.Unlock();
        }

        Assert.That(LockValidator.HasDependency("ok.A", "ok.B"), Is.True);
        Assert.That(LockValidator.HasDependency("ok.B", "ok.A"), Is.False);
    }

    [Test]
    public void LongerCycleIsDetected()
    {
        var a = new KernelMutex("cyc.A");
        var b = new KernelMutex("cyc.B");
        var c = new RwSemaphore("cyc.C");

        WorkerThread.Run("ab", () => { a.Lock(); b.Lock(); b.Unlock(); a.Unlock(); });
        WorkerThread.Run("bc", () => { b.Lock(); c.WriteLock(); c.WriteUnlock(); b.Unlock(); });

        c.ReadLock();
        try
        {
            var error = Assert.Throws<KernelBugException>(a.Lock)!;
            TestContext.Out.WriteLine(error.Message);
            Assert.That(error.Message, Does.Contain("circular locking dependency")
                .And.Contain("'cyc.A' -> 'cyc.B'")
                .And.Contain("'cyc.B' -> 'cyc.C'"));
        }
        finally
        {
            c.ReadUnlock();
        }
    }

    [Test]
    public void TryLockRecordsNoDependencyAndIsNeverReported()
    {
        var a = new KernelMutex("try.A");
        var b = new KernelMutex("try.B");
        TakeAThenB(a, b);

        b.Lock();
        try
        {
            Assert.That(a.TryLock(), Is.True, "a trylock cannot deadlock, so the inverse order is fine");
            a.Unlock();
        }
        finally
        {
            b.Unlock();
        }
    }

    [Test]
    public void SameClassNestingIsRecursiveLockingUnlessNested()
    {
        var parent = new RwSemaphore("nest.mmap_lock");
        var child = new RwSemaphore("nest.mmap_lock");

        parent.WriteLock();
        try
        {
            var error = Assert.Throws<KernelBugException>(child.WriteLock)!;
            Assert.That(error.Message, Does.Contain("possible recursive locking").And.Contain("nest.mmap_lock"));

            Assert.DoesNotThrow(() => child.WriteLockNested(1));
            Assert.That(child.IsWriteHeldByCurrentThread, Is.True);
            child.WriteUnlock();
        }
        finally
        {
            parent.WriteUnlock();
        }
    }

    [Test]
    public void MutexNestedSubclassIsAccepted()
    {
        var outer = new KernelMutex("nest.mutex");
        var inner = new KernelMutex("nest.mutex");
        outer.Lock();
        try
        {
            Assert.Throws<KernelBugException>(inner.Lock);
            Assert.DoesNotThrow(() => inner.Lock(1));
            inner.Unlock();
        }
        finally
        {
            outer.Unlock();
        }
    }

    [Test]
    public void RecursiveAcquireOfTheSameLockIsReported()
    {
        var m = new KernelMutex("rec.mutex");
        var sem = new RwSemaphore("rec.sem");
        m.Lock();
        sem.ReadLock();
        try
        {
            Assert.That(Assert.Throws<KernelBugException>(m.Lock)!.Message, Does.Contain("recursive locking"));
            Assert.That(Assert.Throws<KernelBugException>(sem.ReadLock)!.Message, Does.Contain("recursive locking"));
            Assert.That(LockValidator.HeldLockCount, Is.EqualTo(2));
        }
        finally
        {
            sem.ReadUnlock();
            m.Unlock();
        }
    }

    [Test]
    public void SleepingAcquireUnderSpinLockIsReported()
    {
        var spin = new SpinLock("atomic.spin");
        var mutex = new KernelMutex("atomic.mutex");
        var sem = new RwSemaphore("atomic.sem");

        spin.Lock();
        try
        {
            var e1 = Assert.Throws<KernelBugException>(mutex.Lock)!;
            var e2 = Assert.Throws<KernelBugException>(sem.ReadLock)!;
            Assert.Multiple(() =>
            {
                Assert.That(e1.Rule, Is.EqualTo("LOCKDEP"));
                Assert.That(e1.Message, Does.Contain("sleeping function called from invalid context").And.Contain("atomic.spin"));
                Assert.That(e2.Message, Does.Contain("sleeping function called from invalid context").And.Contain("down_read"));
                Assert.That(mutex.IsLocked, Is.False);
                Assert.That(sem.IsLocked, Is.False);
            });

            Assert.That(mutex.TryLock(), Is.True, "trylock never sleeps");
            Assert.That(sem.TryReadLock(), Is.True);
            sem.ReadUnlock();
            mutex.Unlock();
        }
        finally
        {
            spin.Unlock();
        }

        Assert.DoesNotThrow(() => { mutex.Lock(); mutex.Unlock(); }, "fine once the spinlock is dropped");
    }

    [Test]
    public void SleepingUnderSpinLockIsNotReportedWhenValidationIsOff()
    {
        LockValidator.Enabled = false;
        var spin = new SpinLock("atomic.off.spin");
        var mutex = new KernelMutex("atomic.off.mutex");
        spin.Lock();
        try
        {
            Assert.DoesNotThrow(() => { mutex.Lock(); mutex.Unlock(); });
        }
        finally
        {
            spin.Unlock();
        }
    }

    [Test]
    public void MightSleepInsideNonBlockableScopeIsReported()
    {
        using (LockValidator.EnterNonBlockable("invalidate(non-blockable)"))
        {
            using (LockValidator.EnterNonBlockable("nested"))
            {
                Assert.That(Assert.Throws<KernelBugException>(() => LockValidator.MightSleep("alloc GFP_KERNEL"))!.Message,
                    Does.Contain("sleeping function called from invalid context").And.Contain("alloc GFP_KERNEL").And.Contain("nested"));
            }

            var error = Assert.Throws<KernelBugException>(() => new KernelMutex("nb.U").Lock())!;
            Assert.That(error.Message, Does.Contain("invalidate(non-blockable)"));
        }

        Assert.DoesNotThrow(() => LockValidator.MightSleep("alloc GFP_KERNEL"));
    }

    [Test]
    public void NonBlockableScopeDisposedTwiceIsReported()
    {
        NonBlockableScope scope = LockValidator.EnterNonBlockable("twice");
        scope.Dispose();
        Assert.Throws<KernelBugException>(scope.Dispose);
        Assert.DoesNotThrow(() => LockValidator.MightSleep("after"));
    }

    [Test]
    public void CallbackReturningWithLockHeldIsReported()
    {
        var outer = new KernelMutex("cb.outer");
        var u = new KernelMutex("cb.U");
        outer.Lock();
        try
        {
            HeldLockMark mark = LockValidator.Mark();
            Assert.That(mark.Depth, Is.EqualTo(1));
            u.Lock(); // the "callback" forgets to unlock
            var error = Assert.Throws<KernelBugException>(() => LockValidator.CheckReleasedSince(mark, "dmirror_interval_invalidate"))!;
            Assert.That(error.Message, Does.Contain("lock held when returning from callback dmirror_interval_invalidate").And.Contain("cb.U"));
            u.Unlock();

            mark = LockValidator.Mark();
            u.Lock();
            u.Unlock();
            Assert.DoesNotThrow(() => LockValidator.CheckReleasedSince(mark, "balanced"));
        }
        finally
        {
            outer.Unlock();
        }
    }

    [Test]
    public void CallbackReleasingCallersLockIsReported()
    {
        var outer = new KernelMutex("cb2.outer");
        outer.Lock();
        HeldLockMark mark = LockValidator.Mark();
        outer.Unlock();
        Assert.That(Assert.Throws<KernelBugException>(() => LockValidator.CheckReleasedSince(mark, "cb"))!.Message,
            Does.Contain("bad unlock balance"));
    }

    [Test]
    public void ReadBeginUnderUpdateLockIsReportedAgainstCallbackOrder()
    {
        var map = new LockMap("lm.invalidate_range_start");
        var u = new KernelMutex("lm.U");

        // The notifier core: inside the map, the invalidate callback takes U.
        WorkerThread.Run("invalidate", () =>
        {
            map.Acquire();
            u.Lock();
            u.Unlock();
            map.Release();
        });

        // A driver calling mmu_interval_read_begin (which touches the map) while holding U.
        var error = Assert.Throws<KernelBugException>(() => WorkerThread.Run("driver", () =>
        {
            u.Lock();
            try
            {
                map.Acquire();
                map.Release();
            }
            finally
            {
                u.Unlock();
            }
        }))!;
        Assert.That(error.Message, Does.Contain("circular locking dependency").And.Contain("lm.U").And.Contain("lm.invalidate_range_start"));
    }

    [Test]
    public void LockMapExcludesNobodyAndMustBeReleasedByItsHolder()
    {
        var map = new LockMap("lm2.map");
        map.Acquire();
        try
        {
            Assert.DoesNotThrow(() => WorkerThread.Run("other", () => { map.Acquire(); map.Release(); }));
            Assert.That(map.IsHeldByCurrentThread, Is.True);
        }
        finally
        {
            map.Release();
        }

        Assert.That(map.IsHeldByCurrentThread, Is.False);
        Assert.Throws<KernelBugException>(map.Release);
    }

    [Test]
    public void ResetForgetsDependencies()
    {
        var a = new KernelMutex("reset.A");
        var b = new KernelMutex("reset.B");
        TakeAThenB(a, b);
        Assert.That(LockValidator.HasDependency("reset.A", "reset.B"), Is.True);

        LockValidator.Reset();

        Assert.That(LockValidator.HasDependency("reset.A", "reset.B"), Is.False);
        Assert.DoesNotThrow(() => TakeBThenA(a, b));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void TakeAThenB(KernelMutex a, KernelMutex b)
    {
        a.Lock();
        b.Lock();
        b.Unlock();
        a.Unlock();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void TakeBThenA(KernelMutex a, KernelMutex b)
    {
        b.Lock();
        try
        {
            a.Lock();
            a.Unlock();
        }
        finally
        {
            b.Unlock();
        }
    }
}
