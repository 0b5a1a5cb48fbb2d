using Hmm.Runtime.Locking;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Locking;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>
/// Reverse-map walks lock as mm/rmap.c does: the anon_vma rwsem for the walk and each hit's
/// page-table lock, never the visited mms' mmap locks; and the lock order of the mm/rmap.c header
/// (mmap_lock → anon_vma rwsem → page-table lock) is declared to the validator when a machine
/// boots, so an inversion is reported on first sight.
/// </summary>
public sealed class RmapLockingTests : ValidatorFixture
{
    [Test]
    public void BootDeclaresTheRmapLockOrder()
    {
        using var machine = MmTest.NewMachine();

        Assert.That(LockValidator.HasDependency("mm.MmapLock", AnonVma.LockClass), Is.True);
        Assert.That(LockValidator.HasDependency(AnonVma.LockClass, "mm.page_table_lock"), Is.True);
        Assert.That(LockValidator.HasDependency(AnonVma.LockClass, "mm.MmapLock"), Is.False);
    }

    [Test]
    public void MmapLockTakenUnderTheAnonVmaRwsem_IsReportedAsAnInversion()
    {
        using var machine = MmTest.NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(MmTest.P, MmTest.RW, MmTest.PrivAnon);
        p.Store(a, 1);
        var anon = p.Mm.Vmas.First(v => v.Start <= a && a < v.End).Anon!;

        // Nothing ran mmap_lock → anon_vma in this machine: the declared order alone catches it.
        var error = Assert.Throws<KernelBugException>(() => WorkerThread.Run("inverted", () =>
        {
            anon.Rwsem.ReadLock();
            try
            {
                p.Mm.MmapLock.ReadLock();
                p.Mm.MmapLock.ReadUnlock();
            }
            finally { anon.Rwsem.ReadUnlock(); }
        }))!;

        Assert.That(error.Rule, Is.EqualTo(LockValidator.Rule));
        Assert.That(error.Message, Does.Contain("possible circular locking dependency"));
        Assert.That(error.Message, Does.Contain(AnonVma.LockClass).And.Contain("mm.MmapLock"));
        Assert.That(p.Mm.MmapLock.IsLocked, Is.False, "the reported acquisition took nothing");
        Assert.That(anon.Rwsem.IsLocked, Is.False);
        machine.CheckInvariants();
    }

    [Test]
    public void TheDeclaredOrder_IsAccepted()
    {
        using var machine = MmTest.NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(MmTest.P, MmTest.RW, MmTest.PrivAnon);
        p.Store(a, 1);
        var anon = p.Mm.Vmas.First(v => v.Start <= a && a < v.End).Anon!;

        Assert.DoesNotThrow(() => WorkerThread.Run("in order", () =>
        {
            p.Mm.MmapLock.ReadLock();
            anon.Rwsem.ReadLock();
            p.Mm.PageTableLock.Lock();
            p.Mm.PageTableLock.Unlock();
            anon.Rwsem.ReadUnlock();
            p.Mm.MmapLock.ReadUnlock();
        }));
        machine.CheckInvariants();
    }

    /// <summary>
    /// split_huge_page of a THP a fork shares while another thread holds the child's mmap lock for
    /// write: the split's walks (PMD split, unmap, remap in both mms) need only the anon_vma rwsem
    /// and the page-table locks, so it completes without the child's mmap lock. The old walk took
    /// each visited mm's mmap lock for read and waited for the writer.
    /// </summary>
    [Test]
    public void ThpSplitOfAForkSharedFolio_CompletesWhileTheChildsMmapLockIsHeldForWrite()
    {
        using var machine = MmTest.NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(MmTest.Huge, MmTest.RW, MmTest.PrivAnon);
        p.Madvise(a, MmTest.Huge, Advice.HugePage);
        MmTest.Fill(p, a, Page.PmdPages);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.True);
        var child = p.Fork();
        Assert.That(child.Mm.EntryAt(a).IsHuge, Is.True, "fork shares the PMD mapping");
        ulong head = p.Mm.EntryAt(a).Pfn;

        using var release = new ManualResetEventSlim();
        var holder = WorkerThread.Start("mmap writer", () =>
        {
            child.Mm.MmapLock.WriteLock();
            try { release.Wait(); }
            finally { child.Mm.MmapLock.WriteUnlock(); }
        });
        WorkerThread.WaitUntil(() => child.Mm.MmapLock.IsWriteLocked, "the child's mmap lock is held for write");

        bool split = false;
        var splitter = WorkerThread.Start("split", () =>
        {
            machine.GetPage(head);
            machine.LockPage(head);
            try { split = machine.TrySplitFolio(head, 1); }
            finally
            {
                machine.UnlockPage(head);
                machine.PutPage(head);
            }
        });
        try { splitter.Join(); }
        finally { release.Set(); }
        holder.Join();

        Assert.That(split, Is.True);
        Assert.That(p.Mm.EntryAt(a).IsHuge, Is.False);
        Assert.That(child.Mm.EntryAt(a).IsHuge, Is.False);
        Assert.That(machine.Frames.Order(head), Is.Zero);
        Assert.That(child.Mm.EntryAt(a + 5 * MmTest.P).Pfn, Is.EqualTo(head + 5), "the child maps the subpage");
        MmTest.AssertFilled(p, a, Page.PmdPages);
        MmTest.AssertFilled(child, a, Page.PmdPages);
        child.Exit();
        machine.CheckInvariants();
    }
}
