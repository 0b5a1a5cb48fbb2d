using Hmm.Runtime;
using Hmm.Runtime.Interleaving;
using Hmm.Runtime.Memory;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Stress;

/// <summary>
/// The lost store the stress case <c>Everything(2)</c> hit once on a loaded host (session 3's
/// final soaks: cpu1 loaded 0 right after storing to page 183), traced to the simulated TLB
/// shootdown rather than to any one mm path.
/// </summary>
public partial class RaceRegressionTests
{
    /// <summary>
    /// A CPU access reads the TLB epoch and is preempted before it is counted; a whole flush of
    /// the mm (here another page's migration) runs meanwhile and, not seeing it, returns. The
    /// access is then counted — in the slot that flush already drained — and translates. A second
    /// flush (the migration of the page being stored to) waited only for the slot it flipped
    /// away, so it copied and freed the page under the store: the store was lost (or a load read
    /// the freed, reused page: the 0 of the stress failure). flush_tlb_range must not return
    /// while any access that may have walked the old entry is in progress; the flush now drains
    /// both slots, the other one first, as synchronize_srcu does.
    /// </summary>
    [Test]
    public void CpuAccessCountedAfterAFlushHadLooked_IsWaitedForByTheNextFlush([Values(0, 2)] int minor)
    {
        var dev = DmirrorDevice.Create(Machine, minor);
        using var m = dev.Open(P);
        ulong a = Filled(2, 9);
        ulong b = a + Page.Size;
        P.Store(a, 0x1111UL);
        int cpuThread = 0;
        bool otherFlushed = false, flushWaitedForTheStore = false;
        Errno otherMigration = Errno.EINVAL, migration = Errno.EINVAL;
        using var translated = new ManualResetEventSlim();
        using var flushWaiting = new ManualResetEventSlim();
        using var migrated = new ManualResetEventSlim();
        TestHooks.Callback = (point, subject, address) =>
        {
            bool onCpu = Environment.CurrentManagedThreadId == Volatile.Read(ref cpuThread);
            if (point == TestHookPoint.TlbEpochRead && onCpu && !otherFlushed && ReferenceEquals(subject, P.Mm.Tlb))
            {
                // The store read the epoch and is not counted yet: a whole flush of this mm runs now.
                otherFlushed = true;
                var other = new Thread(() => otherMigration = m.MigrateToDevice(b, 1, Mirror(1), out _));
                other.Start();
                other.Join();
            }
            else if (point == TestHookPoint.CpuAccessTranslated && address == a && onCpu)
            {
                translated.Set();
                // Stay inside the access until the migration of `a` either waits for it (fixed) or completes without waiting (the bug).
                flushWaitedForTheStore = WaitHandle.WaitAny([flushWaiting.WaitHandle, migrated.WaitHandle]) == 0;
            }
            else if (point == TestHookPoint.TlbFlushWaiting && translated.IsSet && ReferenceEquals(subject, P.Mm.Tlb)) flushWaiting.Set();
        };
        var cpu = new Thread(() =>
        {
            Volatile.Write(ref cpuThread, Environment.CurrentManagedThreadId);
            P.Store(a, 0x2222UL);
        });
        var mirror = Mirror(1);
        var migrator = new Thread(() =>
        {
            translated.Wait();
            migration = m.MigrateToDevice(a, 1, mirror, out _);
            migrated.Set();
        });
        cpu.Start();
        migrator.Start();
        Assert.That(cpu.Join(Watchdog) && migrator.Join(Watchdog), Is.True, "threads did not finish");
        TestHooks.Callback = null;

        Assert.That(otherFlushed, Is.True, "the interleaving was not forced");
        Assert.That(otherMigration, Is.EqualTo(Errno.Ok));
        Assert.That(flushWaitedForTheStore, Is.True, "the second flush returned while a store that translated before it was in flight");
        Assert.That(migration, Is.EqualTo(Errno.Ok));
        Assert.That(BitConverter.ToUInt64(mirror, 0), Is.EqualTo(0x2222UL), "the device copy misses the store");
        Assert.That(P.Load<ulong>(a), Is.EqualTo(0x2222UL), "the store was lost");
        m.Close();
        Machine.CheckInvariants();
    }
}
