using Hmm.Runtime.Interleaving;
using Hmm.Runtime.Mm;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>
/// The simulated TLB shootdown (flush_tlb_range): once a flush returns, no CPU access that may
/// have walked the page table before it is still in progress. The machine-level consequence (a
/// store lost in a page a migration copied) is Hmm.Samples.Tests'
/// RaceRegressionTests.CpuAccessCountedAfterAFlushHadLooked_IsWaitedForByTheNextFlush.
/// </summary>
[NonParallelizable]
public class TlbShootdownTests
{
    private static readonly TimeSpan Watchdog = TimeSpan.FromSeconds(30);

    [TearDown]
    public void RemoveHook() => TestHooks.Callback = null;

    /// <summary>
    /// An access reads the epoch and stops before it is counted; a whole flush runs and returns
    /// (it cannot see the access, which will walk the new entries). The access is then counted and
    /// is in progress: the next flush must wait for it. Before, that flush waited only for the
    /// slot it flipped away, and the access sat in the other one.
    /// </summary>
    [Test]
    public void AnAccessCountedAfterAFlushHadLooked_IsWaitedForByTheNextFlush()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var tlb = p.Mm.Tlb;
        int reader = Environment.CurrentManagedThreadId;
        bool firstFlushDone = false;
        TestHooks.Callback = (point, subject, _) =>
        {
            if (point != TestHookPoint.TlbEpochRead || !ReferenceEquals(subject, tlb) || firstFlushDone || Environment.CurrentManagedThreadId != reader) return;
            tlb.Flush();   // the access is not counted yet: this flush has nothing to wait for
            firstFlushDone = true;
        };
        int token = tlb.Enter();
        Assert.That(firstFlushDone, Is.True, "the interleaving was not forced");

        bool waited = false;
        TestHooks.Callback = (point, subject, _) =>
        {
            if (point != TestHookPoint.TlbFlushWaiting || !ReferenceEquals(subject, tlb) || waited) return;
            waited = true;
            tlb.Exit(token);   // the access completes; the flush may now return
        };
        var flusher = new Thread(tlb.Flush);
        flusher.Start();
        Assert.That(flusher.Join(Watchdog), Is.True, "the flush never returned");
        TestHooks.Callback = null;
        if (!waited) tlb.Exit(token);
        Assert.That(waited, Is.True, "the flush returned while an access counted after the previous flush was in progress");
        machine.CheckInvariants();
    }

    /// <summary>Negative case: with no access in progress a flush never waits, and an access begun after a flush is not waited for by it.</summary>
    [Test]
    public void AFlushWithNoAccessInProgress_DoesNotWait()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var tlb = p.Mm.Tlb;
        int waits = 0;
        TestHooks.Callback = (point, subject, _) =>
        {
            if (point == TestHookPoint.TlbFlushWaiting && ReferenceEquals(subject, tlb)) waits++;
        };
        tlb.Flush();
        int token = tlb.Enter();
        tlb.Exit(token);
        tlb.Flush();
        tlb.Flush();
        TestHooks.Callback = null;
        Assert.That(waits, Is.Zero);
        machine.CheckInvariants();
    }
}
