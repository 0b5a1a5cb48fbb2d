using Hmm.Runtime.Mm;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>
/// MADV_COLLAPSE on one address space while other threads of the same process fault pages in and
/// munmap/re-mmap part of the range: every collapse returns 0 or one of madvise_collapse's errnos
/// (ENOMEM also for a hole munmap left, as madvise reports an unmapped part), no write is lost,
/// and the machine's invariants hold at the end.
/// </summary>
public sealed class CollapseConcurrencyTests
{
    [Test]
    public void CollapseRacingFaultsAndMunmap_KeepsEveryWrite([Values(1, 2, 3)] int seed)
    {
        using var machine = new Machine(new MachineOptions { SystemMemory = 128L << 20, LockValidation = true });
        var p = machine.CreateProcess("app");
        ulong region = p.Mmap(4 * Huge, RW, PrivAnon);
        ulong stable = region, churn = region + 2 * Huge;   // faulting threads own [stable, +2 blocks); the munmap thread churns the rest
        Fill(p, region, 1024);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var errnos = new System.Collections.Concurrent.ConcurrentDictionary<Errno, int>();
        int collapses = 0;

        void Run(string name, Action body)
        {
            try { while (!stop.IsCancellationRequested) body(); }
            catch (Exception e) { errors.Enqueue($"{name}: {e}"); stop.Cancel(); }
        }

        // Two faulting threads, each owning alternate pages of the stable blocks: every load must see
        // the thread's last store, whatever collapses copied in between.
        Thread Writer(int parity) => new(() =>
        {
            var rng = new Random(seed * 31 + parity);
            var last = new int[512];
            Run($"writer{parity}", () =>
            {
                int slot = rng.Next(512);
                ulong va = stable + (ulong)(2 * slot + parity) * P;
                int value = rng.Next(1, int.MaxValue);
                p.Store(va, value);
                last[slot] = value;
                int check = rng.Next(512);
                if (last[check] != 0 && p.Load<int>(stable + (ulong)(2 * check + parity) * P) != last[check])
                    throw new InvalidOperationException($"lost write at page {2 * check + parity}");
            });
        });

        var churner = new Thread(() =>
        {
            var rng = new Random(seed * 17);
            Run("munmap", () =>
            {
                ulong at = churn + (ulong)rng.Next(0, 1024 - 64) * P;
                p.Munmap(at, 64 * P);
                ulong back = p.Mmap(64 * P, RW, PrivAnon | MapFlags.Fixed, addr: at);
                if (back != at) throw new InvalidOperationException("MAP_FIXED moved");
                for (int i = 0; i < 64; i += 8) p.Store(at + (ulong)i * P, i);
            });
        });

        var collapser = new Thread(() => Run("collapse", () =>
        {
            try { p.Madvise(region, 4 * Huge, Advice.Collapse); }
            catch (ErrnoException e) when (e.Errno is Errno.EINVAL or Errno.EAGAIN or Errno.ENOMEM)
            {
                errnos.AddOrUpdate(e.Errno, 1, (_, n) => n + 1);
            }
            Interlocked.Increment(ref collapses);
        }));

        var threads = new[] { Writer(0), Writer(1), churner, collapser };
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        Assert.That(errors, Is.Empty, string.Join("\n", errors));
        TestContext.Out.WriteLine($"{collapses} collapses; errnos: {string.Join(", ", errnos.Select(kv => $"{kv.Key}={kv.Value}"))}");
        Assert.That(collapses, Is.GreaterThan(0));
        machine.CheckInvariants();
        p.Exit();
        machine.CheckInvariants();
    }
}
