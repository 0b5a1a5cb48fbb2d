using Hmm.Runtime;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Dmirror;

/// <summary>
/// HMM_DMIRROR_RELEASE (the generated RemoveDeviceMemory: eviction of every chunk, then
/// memunmap_pages) racing two CPU threads of the same process that fault on the device pages of the
/// chunk being removed (migrate_to_ram), while the releasing thread migrates pages back to the
/// device (hot-adding a fresh chunk, which reuses the removed chunk's free lists and users array):
/// every CPU read sees the bytes last written, and the machine's invariants hold at the end.
/// </summary>
public sealed class ReleaseConcurrencyTests : DmirrorTestBase
{
    [Test]
    public void ReleaseRacingCpuFaultsOnTheRemovedChunksPages_DataIntact([Values(1, 2)] int seed)
    {
        var dev = DmirrorDevice.Create(Machine, 0);
        using var m = dev.Open(P);
        const int npages = 64;
        ulong buf = Filled(npages, seed);
        var expected = Pattern(npages, seed);
        var mirror = Mirror(npages);
        Assert.That(m.MigrateToDevice(buf, npages, mirror, out _), Is.EqualTo(Errno.Ok));
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        int releases = 0, reads = 0;

        Thread Cpu(int parity) => new(() =>
        {
            var rng = new Random(seed * 7 + parity);
            var page = new byte[PageSize];
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    int i = 2 * rng.Next(npages / 2) + parity;
                    P.Read(buf + (ulong)i * PageSize, page);
                    if (!page.AsSpan().SequenceEqual(expected.AsSpan(i * PageSize, PageSize)))
                        throw new InvalidOperationException($"page {i} read wrong bytes");
                    Interlocked.Increment(ref reads);
                }
            }
            catch (Exception e) { errors.Enqueue($"cpu{parity}: {e}"); stop.Cancel(); }
        });

        var releaser = new Thread(() =>
        {
            var rng = new Random(seed);
            var back = Mirror(npages);
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    var e = m.Release();
                    if (e is not (Errno.Ok or Errno.EBUSY)) throw new InvalidOperationException($"RELEASE: {e}");
                    Interlocked.Increment(ref releases);
                    int first = rng.Next(npages - 16);
                    // Pages the CPU threads fault back meanwhile: ENOENT (not all mapped at read-back) is clean.
                    e = m.MigrateToDevice(buf + (ulong)first * PageSize, 16, back.AsSpan(0, 16 * PageSize), out _);
                    if (e is not (Errno.Ok or Errno.ENOENT or Errno.EBUSY)) throw new InvalidOperationException($"MIGRATE_TO_DEV: {e}");
                }
            }
            catch (Exception e) { errors.Enqueue($"release: {e}"); stop.Cancel(); }
        });

        var threads = new[] { Cpu(0), Cpu(1), releaser };
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        Assert.That(errors, Is.Empty, string.Join("\n", errors));
        TestContext.Out.WriteLine($"{releases} releases, {reads} CPU page reads");
        Assert.That(releases, Is.GreaterThan(0));
        Assert.That(reads, Is.GreaterThan(0));
        Assert.That(m.Release(), Is.EqualTo(Errno.Ok));
        Assert.That(CpuRead(buf, npages), Is.EqualTo(expected));
        Machine.CheckInvariants();
        m.Close();
        Machine.CheckInvariants();
    }
}
