using Hmm.Runtime;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Dmirror;

/// <summary>A munmap racing a device read: success with the right bytes, or a clean error.</summary>
public class ConcurrencyTests : DmirrorTestBase
{
    [Test]
    public void MunmapDuringDeviceReadIsCleanEitherWay([Values(0, 2)] int minor)
    {
        var dev = DmirrorDevice.Create(Machine, minor);
        using var m = dev.Open(P);
        var rng = new Random(1234 + minor);
        int ok = 0, failed = 0;
        const int npages = 256;
        var expected = Pattern(npages, 3);
        for (int round = 0; round < 40; round++)
        {
            ulong buf = Filled(npages, 3);
            if (round % 2 == 1) Assert.That(m.MigrateToDevice(buf, npages / 2, Mirror(npages / 2), out _), Is.EqualTo(Errno.Ok));
            int delay = rng.Next(0, 2000);
            int hole = rng.Next(0, npages - 16);
            using var start = new Barrier(2);
            var unmapper = new Thread(() =>
            {
                start.SignalAndWait();
                Thread.SpinWait(delay);
                P.Munmap(buf + ((ulong)hole * PageSize), 16 * PageSize);
            });
            unmapper.Start();
            var mirror = Mirror(npages);
            start.SignalAndWait();
            var e = m.Read(buf, npages, mirror, out var c);
            unmapper.Join();
            if (e == Errno.Ok)
            {
                ok++;
                Assert.That(c.Cpages, Is.EqualTo(npages));
                Assert.That(mirror, Is.EqualTo(expected));
            }
            else
            {
                failed++;
                Assert.That(e, Is.EqualTo(Errno.EFAULT));
                Assert.That(c, Is.EqualTo(default(DmirrorCounters)));
            }
            Machine.CheckInvariants();
            P.Munmap(buf, npages * PageSize);
        }
        TestContext.Out.WriteLine($"{ok} reads completed, {failed} failed cleanly");
        Assert.That(ok + failed, Is.EqualTo(40));
        m.Close();
        Machine.CheckInvariants();
    }
}
