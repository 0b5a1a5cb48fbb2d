using Hmm.Runtime.Mm;
using Hmm.Runtime.Notifiers;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Notifiers;

/// <summary>Whole-mm notifiers under contention: get/put from many threads while the mm exits.</summary>
[TestFixture]
public sealed class MmuNotifierConcurrencyTests
{
    private const ulong Page = 0x1000;

    [Test]
    [CancelAfter(60_000)]
    public void GetPutFromThreads_WhileMmExits_EveryAllocationFreedOnce_NoCallbackAfterRelease()
    {
        using var machine = new Machine();
        var process = machine.CreateProcess("p");
        var mm = process.Mm;
        ulong addr = process.Mmap(16 * Page, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        for (int i = 0; i < 16; i++) process.Store(addr + (ulong)i * Page, (byte)i);

        var ops = new CountingOps();
        // One long-lived reference so the subscriptions and one notifier exist before the race.
        Assert.That(MmuNotifier.Get(ops, mm, out var anchor), Is.EqualTo(Errno.Ok));
        var subs = (MmuNotifierSubscriptions)mm.NotifierHook!;

        const int threads = 4;
        using var go = new Barrier(threads + 1);
        var errors = new List<Exception>();
        int gets = 0;
        var workers = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            workers[t] = new Thread(() =>
            {
                try
                {
                    go.SignalAndWait();
                    for (int i = 0; i < 400; i++)
                    {
                        // mmget_not_zero first: register needs mm_users > 0, as in the kernel.
                        if (!mm.TryGet()) break;
                        try
                        {
                            if (MmuNotifier.Get(ops, mm, out var n) != Errno.Ok) continue;
                            Interlocked.Increment(ref gets);
                            n!.Put();
                        }
                        finally
                        {
                            mm.Put();
                        }
                    }
                }
                catch (Exception e)
                {
                    lock (errors) errors.Add(e);
                }
            }) { IsBackground = true };
            workers[t].Start();
        }
        go.SignalAndWait();
        Thread.Sleep(5);
        process.Exit(); // the workers' mm references delay exit_mmap to the last of them
        foreach (var w in workers) Assert.That(w.Join(TimeSpan.FromSeconds(30)), Is.True, "worker hung");
        Assert.That(errors, Is.Empty, () => string.Join("\n", errors));
        Assert.That(mm.IsTornDown, Is.True);
        anchor!.Put();
        MmuNotifier.Synchronize(machine);

        Assert.Multiple(() =>
        {
            Assert.That(gets, Is.GreaterThan(0));
            Assert.That(ops.Freed, Is.EqualTo(ops.Allocated), "every allocated notifier freed exactly once");
            Assert.That(ops.CallbacksAfterRelease, Is.Zero, "no callback started after release");
            Assert.That(ops.Releases, Is.LessThanOrEqualTo(ops.Allocated));
            Assert.That(MmuNotifier.PendingFrees(machine), Is.Zero);
            Assert.That(subs.SubscriberCount, Is.Zero);
        });
        subs.CheckInvariants();
        machine.CheckInvariants();
    }

    private sealed class CountingOps : MmuNotifierOps
    {
        private readonly HashSet<MmuNotifier> _released = new();
        public int Allocated, Freed, Releases, CallbacksAfterRelease;

        public override void Release(MmuNotifier subscription, AddressSpace mm)
        {
            lock (_released) _released.Add(subscription);
            Interlocked.Increment(ref Releases);
        }

        public override Errno InvalidateRangeStart(MmuNotifier subscription, in NotifierRange range)
        {
            lock (_released) if (_released.Contains(subscription)) CallbacksAfterRelease++;
            return Errno.Ok;
        }

        public override void InvalidateRangeEnd(MmuNotifier subscription, in NotifierRange range)
        {
            lock (_released) if (_released.Contains(subscription)) CallbacksAfterRelease++;
        }

        public override Errno AllocNotifier(AddressSpace mm, out MmuNotifier? subscription)
        {
            Interlocked.Increment(ref Allocated);
            subscription = new MmuNotifier(this);
            return Errno.Ok;
        }

        public override void FreeNotifier(MmuNotifier subscription) => Interlocked.Increment(ref Freed);
    }
}
