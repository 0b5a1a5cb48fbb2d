using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using Hmm.Runtime.Scheduling;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Notifiers;

/// <summary>
/// Whole-mm <see cref="MmuNotifier"/>: register/unregister, get/put with the SRCU-deferred free,
/// synchronize, release at exit, and dispatch beside the interval notifiers (mm/mmu_notifier.c,
/// reference/kernel-hmm.md A.6, B.1, B.3).
/// </summary>
[TestFixture]
[NonParallelizable] // one test installs the static fault-injection hook
public sealed class MmuNotifierTests
{
    private const ulong Page = 0x1000;

    private Machine _machine = null!;
    private Process _process = null!;
    private AddressSpace _mm = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine();
        _process = _machine.CreateProcess("p");
        _mm = _process.Mm;
    }

    [TearDown]
    public void TearDown()
    {
        FaultInjection.Hook = null;
        _machine.Dispose();
    }

    private MmuNotifierSubscriptions Subs => (MmuNotifierSubscriptions)_mm.NotifierHook!;

    private ulong MapAndTouch(int pages)
    {
        ulong addr = _process.Mmap((ulong)pages * Page, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        for (int i = 0; i < pages; i++) _process.Store(addr + (ulong)i * Page, (byte)1);
        return addr;
    }

    private void Finish()
    {
        MmuNotifier.Synchronize(_machine);
        (_mm.NotifierHook as MmuNotifierSubscriptions)?.CheckInvariants();
        _machine.CheckInvariants();
    }

    // ------------------------------------------------------------------ register / unregister

    [Test]
    public void Register_LinksWithOneUser_UnregisterRunsReleaseOnLiveMmAndUnlinks()
    {
        var ops = new RecordingMmuNotifierOps();
        var n = new MmuNotifier(ops);
        Assert.That(n.Register(_mm), Is.EqualTo(Errno.Ok));
        Assert.Multiple(() =>
        {
            Assert.That(n.IsRegistered, Is.True);
            Assert.That(n.Users, Is.EqualTo(1));
            Assert.That(n.Mm, Is.SameAs(_mm));
            Assert.That(Subs.SubscriberCount, Is.EqualTo(1));
            Assert.That(_mm.MmapLock.IsLocked, Is.False, "register drops the mmap lock it took");
        });
        n.Unregister(_mm);
        Assert.That(n.IsRegistered, Is.False);
        Assert.That(ops.Snapshot().Select(c => c.Callback), Is.EqualTo(new[] { "release" }));
        _process.Munmap(MapAndTouch(1), Page);
        Assert.That(ops.Snapshot(), Has.Length.EqualTo(1), "no callback after unregister returned");
        Finish();
    }

    [Test]
    public void Register_WithMmapLockHeld_IsNtfR02_RegisterLockedNeedsTheWriteLock()
    {
        var n = new MmuNotifier(new RecordingMmuNotifierOps());
        _mm.MmapLock.WriteLock();
        try
        {
            Assert.That(() => n.Register(_mm), Throws.TypeOf<KernelBugException>().With.Message.Contains("NTF-R02"));
            Assert.That(n.RegisterLocked(_mm), Is.EqualTo(Errno.Ok));
        }
        finally
        {
            _mm.MmapLock.WriteUnlock();
        }
        var other = new MmuNotifier(new RecordingMmuNotifierOps());
        Assert.That(() => other.RegisterLocked(_mm), Throws.TypeOf<KernelBugException>().With.Message.Contains("NTF-R02"));
        _mm.MmapLock.ReadLock();
        try
        {
            Assert.That(() => other.RegisterLocked(_mm), Throws.TypeOf<KernelBugException>().With.Message.Contains("NTF-R02"), "a read lock is not enough");
        }
        finally
        {
            _mm.MmapLock.ReadUnlock();
        }
        Assert.That(other.IsRegistered, Is.False);
        n.Unregister(_mm);
        Finish();
    }

    [Test]
    public void Register_SecondaryTlbsWithStartEnd_IsEinvalAndLinksNothing()
    {
        var n = new MmuNotifier(new TlbAndStartOps());
        Assert.That(n.Register(_mm), Is.EqualTo(Errno.EINVAL));
        Assert.That(n.IsRegistered, Is.False);
        Assert.That(_mm.NotifierHook, Is.Null, "nothing was installed");
        var ok = new MmuNotifier(new SecondaryTlbOps());
        Assert.That(ok.Register(_mm), Is.EqualTo(Errno.Ok), "secondary TLBs alone are fine");
        ok.Unregister(_mm);
        Finish();
    }

    private sealed class FailSystemPage : IFaultInjectionHook
    {
        public bool Fails(FaultSite site) => site == FaultSite.SystemPage;
    }

    [Test]
    public void Register_FirstSubscriptionAllocationFails_IsEnomem_LaterRegisterSucceeds()
    {
        var n = new MmuNotifier(new RecordingMmuNotifierOps());
        FaultInjection.Hook = new FailSystemPage();
        Assert.That(n.Register(_mm), Is.EqualTo(Errno.ENOMEM));
        FaultInjection.Hook = null;
        Assert.That(n.IsRegistered, Is.False);
        Assert.That(_mm.NotifierHook, Is.Null);
        Assert.That(n.Register(_mm), Is.EqualTo(Errno.Ok), "the notifier is reusable after -ENOMEM");
        FaultInjection.Hook = new FailSystemPage();
        var second = new MmuNotifier(new RecordingMmuNotifierOps());
        Assert.That(second.Register(_mm), Is.EqualTo(Errno.Ok), "subscriptions exist: nothing to allocate");
        FaultInjection.Hook = null;
        second.Unregister(_mm);
        n.Unregister(_mm);
        Finish();
    }

    [Test]
    public void Register_OnExitedMm_IsNtfR02_AndTwiceIsNtfR05()
    {
        var n = new MmuNotifier(new RecordingMmuNotifierOps());
        Assert.That(n.Register(_mm), Is.EqualTo(Errno.Ok));
        Assert.That(() => n.Register(_mm), Throws.TypeOf<KernelBugException>().With.Message.Contains("NTF-R05"));
        var subs = Subs;
        _process.Exit();
        var late = new MmuNotifier(new RecordingMmuNotifierOps());
        Assert.That(() => late.Register(_mm), Throws.TypeOf<KernelBugException>().With.Message.Contains("NTF-R02"));
        n.Unregister(_mm);
        MmuNotifier.Synchronize(_machine);
        subs.CheckInvariants();
        _machine.CheckInvariants();
    }

    [Test]
    public void Unregister_NotRegistered_IsNtfR05_FromCallback_IsNtfR04()
    {
        var never = new MmuNotifier(new RecordingMmuNotifierOps());
        Assert.That(() => never.Unregister(_mm), Throws.TypeOf<KernelBugException>().With.Message.Contains("NTF-R05"));

        Exception? inside = null;
        var ops = new RecordingMmuNotifierOps();
        var n = new MmuNotifier(ops);
        ops.OnRelease = self =>
        {
            try { self.Unregister(_mm); }
            catch (KernelBugException e) { inside = e; }
        };
        Assert.That(n.Register(_mm), Is.EqualTo(Errno.Ok));
        var subs = Subs;
        _process.Exit();
        Assert.That(inside, Is.Not.Null.And.Message.Contains("NTF-R04"));
        n.Unregister(_mm); // after exit: no release again, just the grace period
        Assert.That(ops.Snapshot().Count(c => c.Callback == "release"), Is.EqualTo(1));
        MmuNotifier.Synchronize(_machine);
        subs.CheckInvariants();
        _machine.CheckInvariants();
    }

    // ------------------------------------------------------------------ dispatch

    [Test]
    public void Invalidate_SameRangesEventsAndBlockableAsIntervalNotifiers()
    {
        using var rec = NotifierRecorder.Attach(_mm, 0, NotifierRecorder.WholeSpace);
        var ops = new RecordingMmuNotifierOps();
        var n = new MmuNotifier(ops);
        Assert.That(n.Register(_mm), Is.EqualTo(Errno.Ok));
        ulong addr = MapAndTouch(4);
        _process.Mprotect(addr, 2 * Page, Prot.Read);
        _process.Madvise(addr + 2 * Page, Page, Advice.DontNeed);
        _process.Munmap(addr, 4 * Page);

        var starts = ops.Snapshot().Where(c => c.Callback == "start").Select(c => (c.Event, c.Start, c.End, c.Blockable)).ToArray();
        var ends = ops.Snapshot().Where(c => c.Callback == "end").Select(c => (c.Event, c.Start, c.End, c.Blockable)).ToArray();
        var interval = rec.Events.Select(e => (e.Event, e.Start, e.End, e.Blockable)).ToArray();
        Assert.That(interval, Is.Not.Empty);
        Assert.That(starts, Is.EqualTo(interval), "one start per interval invalidation, same range, event and blockable flag");
        Assert.That(ends, Is.EqualTo(interval), "each start has its end");
        n.Unregister(_mm);
        Finish();
    }

    [Test]
    public void Invalidate_ListOrderIsNewestFirst_AndStartPrecedesEnd()
    {
        var order = new List<string>();
        var a = new OrderOps("a", order);
        var b = new OrderOps("b", order);
        var na = new MmuNotifier(a);
        var nb = new MmuNotifier(b);
        Assert.That(na.Register(_mm), Is.EqualTo(Errno.Ok));
        Assert.That(nb.Register(_mm), Is.EqualTo(Errno.Ok));
        _process.Munmap(MapAndTouch(1), Page);
        Assert.That(order, Is.EqualTo(new[] { "b.start", "a.start", "b.end", "a.end" }));
        nb.Unregister(_mm);
        na.Unregister(_mm);
        Finish();
    }

    private sealed class OrderOps(string name, List<string> order) : MmuNotifierOps
    {
        public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
        {
            lock (order) order.Add(name + ".start");
            return Errno.Ok;
        }

        public override void InvalidateRangeEnd(MmuNotifier subscription, in NotifierRange range)
        {
            lock (order) order.Add(name + ".end");
        }
    }

    [Test]
    public void NonBlockableStart_Eagain_OomReaperSkipsRange_OthersGetTheirEnd_StateBalanced()
    {
        ulong addr = MapAndTouch(2);
        var recording = new RecordingMmuNotifierOps();
        var refusing = new RefusingMmuNotifierOps();
        var nr = new MmuNotifier(recording);
        var nf = new MmuNotifier(refusing);
        Assert.That(nr.Register(_mm), Is.EqualTo(Errno.Ok));
        Assert.That(nf.Register(_mm), Is.EqualTo(Errno.Ok));
        using var rec = NotifierRecorder.Attach(_mm, 0, NotifierRecorder.WholeSpace);
        var subs = Subs;

        var skipped = _process.OomKill();
        Assert.That(skipped, Has.Some.EqualTo((addr, addr + 2 * Page)), "the refused VMA keeps its pages");
        Assert.That(refusing.Starts, Is.GreaterThan(0));
        var calls = recording.Snapshot();
        Assert.That(calls.Count(c => c.Callback == "start"), Is.EqualTo(calls.Count(c => c.Callback == "end")),
            "a subscriber whose start succeeded still gets its end when another refused");
        Assert.That(calls.Where(c => c.Callback == "start"), Has.All.Matches<MmuCall>(c => !c.Blockable));
        Assert.That(subs.ActiveInvalidateRanges, Is.Zero, "the interval half of a refused start is undone");
        subs.CheckInvariants();
        _process.Exit();
        nr.Unregister(_mm);
        nf.Unregister(_mm);
        MmuNotifier.Synchronize(_machine);
        subs.CheckInvariants();
        _machine.CheckInvariants();
    }

    [Test]
    public void FailingStartWithEnd_IsNtfR03_BlockableRefusal_IsHmmR08()
    {
        MapAndTouch(1);
        var n = new MmuNotifier(new RefusingWithEndOps());
        Assert.That(n.Register(_mm), Is.EqualTo(Errno.Ok));
        var subs = Subs;
        var nonBlockable = new NotifierRange(_mm, 0, Page, NotifyEvent.Unmap, blockable: false);
        Assert.That(() => subs.InvalidateRangeStart(in nonBlockable), Throws.TypeOf<KernelBugException>().With.Message.Contains("NTF-R03"));
        Assert.That(subs.ActiveInvalidateRanges, Is.Zero, "a start that threw is undone");
        n.Unregister(_mm);

        var always = new MmuNotifier(new AlwaysEagainOps());
        Assert.That(always.Register(_mm), Is.EqualTo(Errno.Ok));
        var blockable = new NotifierRange(_mm, 0, Page, NotifyEvent.Unmap, blockable: true);
        Assert.That(() => subs.InvalidateRangeStart(in blockable), Throws.TypeOf<KernelBugException>().With.Message.Contains("HMM-R08"));
        always.Unregister(_mm);
        Finish();
    }

    private sealed class AlwaysEagainOps : MmuNotifierOps
    {
        public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range) => Errno.EAGAIN;
    }

    [Test]
    public void SecondaryTlbs_FlushedForEveryChange_YoungQueriesReachSubscribers()
    {
        var ops = new SecondaryTlbOps();
        var n = new MmuNotifier(ops);
        Assert.That(n.Register(_mm), Is.EqualTo(Errno.Ok));
        ulong addr = MapAndTouch(2);
        _process.Munmap(addr, 2 * Page);
        Assert.That(ops.Flushes, Has.Some.EqualTo((addr, addr + 2 * Page)));
        ops.Young = true;
        Assert.That(Subs.TestYoung(addr), Is.True);
        Assert.That(Subs.ClearFlushYoung(addr, addr + Page), Is.True);
        Assert.That(Subs.ClearFlushYoung(addr, addr + Page), Is.False, "cleared by the first query");
        Assert.That(Subs.ClearYoung(addr, addr + Page), Is.False, "not implemented: counts as NULL");
        Assert.That(ops.Implemented, Is.EqualTo(MmuNotifierCallbacks.ArchInvalidateSecondaryTlbs | MmuNotifierCallbacks.ClearFlushYoung | MmuNotifierCallbacks.TestYoung));
        n.Unregister(_mm);
        Finish();
    }

    // ------------------------------------------------------------------ get / put / synchronize

    [Test]
    public void Get_SameOpsSameMm_SharesOneNotifier_OtherOpsOrMmGetAnother()
    {
        var ops = new RecordingMmuNotifierOps();
        Assert.That(MmuNotifier.Get(ops, _mm, out var first), Is.EqualTo(Errno.Ok));
        Assert.That(MmuNotifier.Get(ops, _mm, out var second), Is.EqualTo(Errno.Ok));
        var otherOps = new RecordingMmuNotifierOps();
        Assert.That(MmuNotifier.Get(otherOps, _mm, out var third), Is.EqualTo(Errno.Ok));
        var otherMm = _machine.CreateProcess("q").Mm;
        Assert.That(MmuNotifier.Get(ops, otherMm, out var fourth), Is.EqualTo(Errno.Ok));
        Assert.Multiple(() =>
        {
            Assert.That(second, Is.SameAs(first));
            Assert.That(first!.Users, Is.EqualTo(2));
            Assert.That(ops.Allocated, Is.EqualTo(2), "one per mm");
            Assert.That(third, Is.Not.SameAs(first));
            Assert.That(fourth, Is.Not.SameAs(first));
            Assert.That(Subs.SubscriberCount, Is.EqualTo(2));
        });
        first!.Put();
        Assert.That(first.IsRegistered, Is.True, "one user left");
        second!.Put();
        third!.Put();
        fourth!.Put();
        Finish();
        Assert.That(ops.Freed, Is.EquivalentTo(new[] { first, fourth }));
        Assert.That(otherOps.Freed, Is.EquivalentTo(new[] { third }));
    }

    [Test]
    public void LastPut_UnlinksAtOnce_FreesOnlyAfterGracePeriodOnAnotherThread_SynchronizeWaits()
    {
        var ops = new ThreadRecordingOps();
        Assert.That(MmuNotifier.Get(ops, _mm, out var n), Is.EqualTo(Errno.Ok));
        // Hold a read-side section open: the grace period, hence the free, cannot complete.
        var srcu = NotifierSrcu.Of(_machine);
        int token = srcu.ReadLock();
        n!.Put();
        Assert.That(n.IsRegistered, Is.False, "unlinked by the last put");
        Assert.That(n.Users, Is.Zero);
        Thread.Sleep(100);
        Assert.That(n.IsFreed, Is.False, "free waits for the SRCU reader");
        Assert.That(MmuNotifier.PendingFrees(_machine), Is.EqualTo(1));
        _process.Munmap(MapAndTouch(1), Page);
        Assert.That(ops.Starts, Is.Zero, "no callback once unlinked");
        var sync = TestThread.Start(() => MmuNotifier.Synchronize(_machine));
        sync.AssertBlocked();
        srcu.ReadUnlock(token);
        sync.AssertCompletes();
        Assert.That(n.IsFreed, Is.True);
        Assert.That(ops.FreeThread, Is.Not.EqualTo(Environment.CurrentManagedThreadId), "FreeNotifier never runs inside put");
        Assert.That(MmuNotifier.PendingFrees(_machine), Is.Zero);
        Finish();
    }

    private sealed class ThreadRecordingOps : MmuNotifierOps
    {
        public int Starts;
        public int FreeThread = -1;

        public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
        {
            Interlocked.Increment(ref Starts);
            return Errno.Ok;
        }

        public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
        {
            subscription = new MmuNotifier(this);
            return Errno.Ok;
        }

        public override void FreeNotifier(MmuNotifier subscription) => FreeThread = Environment.CurrentManagedThreadId;
    }

    [Test]
    public void Get_AllocFails_ReturnsItsError_RegisterFails_FreesInline()
    {
        var ops = new RecordingMmuNotifierOps { AllocResult = Errno.ENOMEM };
        Assert.That(MmuNotifier.Get(ops, _mm, out var none), Is.EqualTo(Errno.ENOMEM));
        Assert.That(none, Is.Null);

        var bad = new TlbStartAllocOps();
        Assert.That(MmuNotifier.Get(bad, _mm, out var rejected), Is.EqualTo(Errno.EINVAL));
        Assert.That(rejected, Is.Null);
        Assert.That(bad.Freed, Is.EqualTo(1), "a notifier that failed to register is freed at once (no grace period needed)");
        Assert.That(MmuNotifier.PendingFrees(_machine), Is.Zero);
        Finish();
    }

    private sealed class TlbStartAllocOps : MmuNotifierOps
    {
        public int Freed;

        public override void ArchInvalidateSecondaryTlbs(MmuNotifier subscription, AddressSpace mm, ulong start, ulong end) { }

        public override void InvalidateRangeEnd(MmuNotifier subscription, in NotifierRange range) { }

        public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
        {
            subscription = new MmuNotifier(this);
            return Errno.Ok;
        }

        public override void FreeNotifier(MmuNotifier subscription) => Freed++;
    }

    [Test]
    public void Get_WithMmapLockHeld_IsNtfR02_GetLockedWorksUnderIt()
    {
        var ops = new RecordingMmuNotifierOps();
        _mm.MmapLock.WriteLock();
        MmuNotifier? n;
        try
        {
            Assert.That(() => MmuNotifier.Get(ops, _mm, out _), Throws.TypeOf<KernelBugException>().With.Message.Contains("NTF-R02"));
            Assert.That(MmuNotifier.GetLocked(ops, _mm, out n), Is.EqualTo(Errno.Ok));
        }
        finally
        {
            _mm.MmapLock.WriteUnlock();
        }
        Assert.That(() => MmuNotifier.GetLocked(ops, _mm, out _), Throws.TypeOf<KernelBugException>().With.Message.Contains("NTF-R02"));
        n!.Put();
        Finish();
    }

    [Test]
    public void PutAfterLastPut_IsNtfR05_PutOfNeverRegistered_IsNtfR05()
    {
        var ops = new RecordingMmuNotifierOps();
        Assert.That(MmuNotifier.Get(ops, _mm, out var n), Is.EqualTo(Errno.Ok));
        n!.Put();
        Assert.That(() => n.Put(), Throws.TypeOf<KernelBugException>().With.Message.Contains("NTF-R05"));
        Assert.That(() => new MmuNotifier(ops).Put(), Throws.TypeOf<KernelBugException>().With.Message.Contains("NTF-R05"));
        Finish();
        Assert.That(ops.Freed, Has.Count.EqualTo(1), "freed once");
    }

    // ------------------------------------------------------------------ release at exit

    [Test]
    public void Exit_ReleaseOnceBeforePagesTornDown_NoCallbackAfterIt()
    {
        ulong addr = MapAndTouch(2);
        long rssDuringRelease = -1;
        var ops = new RecordingMmuNotifierOps();
        ops.OnRelease = _ => rssDuringRelease = _mm.RssAnon;
        var n = new MmuNotifier(ops);
        Assert.That(n.Register(_mm), Is.EqualTo(Errno.Ok));
        var subs = Subs;
        _process.Exit();
        var calls = ops.Snapshot();
        Assert.That(calls.Count(c => c.Callback == "release"), Is.EqualTo(1));
        Assert.That(calls[^1].Callback, Is.EqualTo("release"), "exit's UNMAP after release reaches no whole-mm notifier");
        Assert.That(rssDuringRelease, Is.EqualTo(2), "release runs while the pages are still mapped");
        Assert.That(_mm.RssAnon, Is.Zero);
        Assert.That(n.IsRegistered, Is.False, "exit unlinks every subscriber");
        Assert.That(n.Users, Is.EqualTo(1), "the owner still holds its registration");
        n.Unregister(_mm);
        Assert.That(ops.Snapshot().Count(c => c.Callback == "release"), Is.EqualTo(1), "unregister after exit does not release again");
        _ = addr;
        MmuNotifier.Synchronize(_machine);
        subs.CheckInvariants();
        _machine.CheckInvariants();
    }

    /// <summary>
    /// exit_mmap calls mmu_notifier_release before it takes the mmap lock (mm/mmap.c): a
    /// release that takes the lock itself, as a KVM-like secondary MMU may to walk the VMAs it
    /// still mirrors, neither deadlocks nor finds the lock held. The exit's later UNMAP is the
    /// contrast: it runs under the lock, which an interval notifier still inserted observes.
    /// </summary>
    [Test]
    public void Exit_ReleaseRunsBeforeTheMmapLockIsTaken_ReleaseMayTakeItForRead_UnmapRunsUnderIt()
    {
        ulong addr = MapAndTouch(2);
        bool? lockedInRelease = null;
        int vmasSeenUnderReadLock = -1;
        var ops = new RecordingMmuNotifierOps();
        ops.OnRelease = _ =>
        {
            lockedInRelease = _mm.MmapLock.IsLocked;
            // Only take it when free: on a runtime that still held the write lock here this
            // would self-deadlock instead of failing the assertion below.
            if (lockedInRelease == true) return;
            _mm.MmapLock.ReadLock();
            try { vmasSeenUnderReadLock = _mm.FindVma(addr) is null ? 0 : _mm.Vmas.Count; }
            finally { _mm.MmapLock.ReadUnlock(); }
        };
        var n = new MmuNotifier(ops);
        Assert.That(n.Register(_mm), Is.EqualTo(Errno.Ok));
        var interval = new LockObservingIntervalOps(_mm);
        var itn = new IntervalNotifier(interval);
        Assert.That(itn.Insert(_mm, addr, 2 * Page), Is.EqualTo(Errno.Ok));
        var subs = Subs;

        _process.Exit();

        Assert.That(lockedInRelease, Is.False, "mmu_notifier_release runs before exit_mmap takes the mmap lock");
        Assert.That(vmasSeenUnderReadLock, Is.EqualTo(1), "the release could take the mmap lock for read and still saw the mapping");
        Assert.That(interval.Seen, Is.EqualTo(new[] { (NotifyEvent.Release, false), (NotifyEvent.Unmap, true) }),
            "the interval RELEASE comes without the lock, exit's UNMAP of the VMAs under it");
        Assert.That(_mm.IsTornDown, Is.True);
        itn.Remove();
        n.Unregister(_mm);
        MmuNotifier.Synchronize(_machine);
        subs.CheckInvariants();
        _machine.CheckInvariants();
    }

    /// <summary>Records each invalidation's event and whether the mm's mmap lock was held during it.</summary>
    private sealed class LockObservingIntervalOps(AddressSpace mm) : IIntervalNotifierOps
    {
        public readonly List<(NotifyEvent Event, bool Locked)> Seen = [];

        public bool Invalidate(IntervalNotifier notifier, in NotifierRange range, ulong curSeq)
        {
            Seen.Add((range.Event, mm.MmapLock.IsLocked));
            notifier.SetSeq(curSeq);
            return true;
        }
    }

    [Test]
    public void PutInsideRelease_IsAllowed_FreeRunsAfterReleaseReturned()
    {
        MapAndTouch(1);
        var ops = new RecordingMmuNotifierOps { PutInRelease = true };
        Assert.That(MmuNotifier.Get(ops, _mm, out var n), Is.EqualTo(Errno.Ok));
        var subs = Subs;
        bool freedDuringRelease = true;
        ops.OnRelease = self => freedDuringRelease = self.IsFreed;
        _process.Exit();
        Assert.That(freedDuringRelease, Is.False);
        MmuNotifier.Synchronize(_machine);
        Assert.That(n!.IsFreed, Is.True);
        Assert.That(ops.Freed, Is.EqualTo(new[] { n }));
        subs.CheckInvariants();
        _machine.CheckInvariants();
    }

    [Test]
    public void ExitWithPutsPending_ThenSynchronize_FreesEverything()
    {
        MapAndTouch(1);
        var opsTables = Enumerable.Range(0, 4).Select(_ => new RecordingMmuNotifierOps()).ToArray();
        var notifiers = new List<MmuNotifier>();
        foreach (var ops in opsTables)
        {
            Assert.That(MmuNotifier.Get(ops, _mm, out var n), Is.EqualTo(Errno.Ok));
            notifiers.Add(n!);
        }
        var subs = Subs;
        // Hold the grace period so the puts stay pending across the exit.
        var srcu = NotifierSrcu.Of(_machine);
        int token = srcu.ReadLock();
        notifiers[0].Put();
        notifiers[1].Put();
        Assert.That(MmuNotifier.PendingFrees(_machine), Is.EqualTo(2));
        srcu.ReadUnlock(token);
        _process.Exit();
        notifiers[2].Put(); // after exit: unlinked already, users drop to 0
        notifiers[3].Put();
        MmuNotifier.Synchronize(_machine);
        Assert.That(MmuNotifier.PendingFrees(_machine), Is.Zero);
        Assert.That(notifiers, Has.All.Matches<MmuNotifier>(n => n.IsFreed));
        Assert.That(opsTables.Sum(o => o.Freed.Count), Is.EqualTo(4));
        Assert.That(opsTables, Has.All.Matches<RecordingMmuNotifierOps>(o => o.Snapshot().Count(c => c.Callback == "release") <= 1));
        subs.CheckInvariants();
        _machine.CheckInvariants();
    }

    [Test]
    public void SynchronizeFromCallback_IsNtfR04()
    {
        Exception? inside = null;
        var ops = new RecordingMmuNotifierOps();
        ops.OnRelease = _ =>
        {
            try { MmuNotifier.Synchronize(_machine); }
            catch (KernelBugException e) { inside = e; }
        };
        Assert.That(MmuNotifier.Get(ops, _mm, out var n), Is.EqualTo(Errno.Ok));
        var subs = Subs;
        _process.Exit();
        Assert.That(inside, Is.Not.Null.And.Message.Contains("NTF-R04"));
        n!.Put();
        MmuNotifier.Synchronize(_machine);
        subs.CheckInvariants();
        _machine.CheckInvariants();
    }
}
