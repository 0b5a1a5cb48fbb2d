using Hmm.Generators.Behaviour.Tests.Drivers;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using NUnit.Framework;

namespace Hmm.Generators.Behaviour.Tests;

/// <summary>
/// An errno-returning <c>[OnMirrorFault]</c> (dmirror_do_fault returning -EFAULT for a write piece
/// answered read-only): the generated fault loop returns that errno and faults no later piece, in
/// each synchronisation mode; <c>MakeExclusive</c> stops at the refused page.
/// </summary>
public sealed class MirrorFaultErrnoBehaviourTests
{
    private const ulong P = Page.Size;
    private Machine _machine = null!;
    private Process _process = null!;
    private SimDevice _device = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
        _process = _machine.CreateProcess("app");
        _device = new SimDevice(_machine, "refusing");
    }

    [TearDown]
    public void TearDown()
    {
        _process.Exit();
        _machine.CheckInvariants();
        _machine.Dispose();
    }

    private static IEnumerable<TestCaseData> Drivers()
    {
        yield return new TestCaseData("seq").SetArgDisplayNames("SequenceRetry");
        yield return new TestCaseData("lock").SetArgDisplayNames("RangeLock");
        yield return new TestCaseData("mon").SetArgDisplayNames("RangeMonitor");
    }

    private IRefusingDriver Attach(string sync)
    {
        switch (sync)
        {
            case "seq": { var d = new RefusingSeqDriver(); Assert.That(d.Attach(_device, _process), Is.EqualTo(Errno.Ok)); return d; }
            case "lock": { var d = new RefusingLockDriver(); Assert.That(d.Attach(_device, _process), Is.EqualTo(Errno.Ok)); return d; }
            default: { var d = new RefusingMonitorDriver(); Assert.That(d.Attach(_device, _process), Is.EqualTo(Errno.Ok)); return d; }
        }
    }

    private ulong MapWritten(int pages)
    {
        ulong buf = _process.Mmap((ulong)pages * P, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        for (int i = 0; i < pages; i++) _process.Store(buf + ((ulong)i * P), (ulong)i + 1);
        return buf;
    }

    [TestCaseSource(nameof(Drivers))]
    public void ARefusedPiece_EndsTheFaultWithItsErrno(string sync)
    {
        var driver = Attach(sync);
        ulong buf = MapWritten(100);
        driver.RefuseAt = buf + (40 * P);   // in the second 32-page piece

        Assert.That(driver.Fault(buf, buf + (100 * P), write: false), Is.EqualTo(Errno.EFAULT));

        Assert.That(driver.Pieces, Is.EqualTo(new[] { 32, 32 }), "the third and fourth pieces must not be faulted");
        driver.Detach();
    }

    [TestCaseSource(nameof(Drivers))]
    public void NoRefusal_FaultsEveryPiece(string sync)
    {
        var driver = Attach(sync);
        ulong buf = MapWritten(100);

        Assert.That(driver.Fault(buf, buf + (100 * P), write: false), Is.EqualTo(Errno.Ok));

        Assert.That(driver.Pieces, Is.EqualTo(new[] { 32, 32, 32, 4 }));
        driver.Detach();
    }

    [Test]
    public void ARefusedPage_EndsMakeExclusiveThere()
    {
        var driver = new RefusingSeqDriver();
        Assert.That(driver.Attach(_device, _process), Is.EqualTo(Errno.Ok));
        ulong buf = MapWritten(4);
        driver.RefuseAt = buf + P;

        Assert.That(driver.MakeExclusive(buf, buf + (4 * P)), Is.EqualTo(Errno.EFAULT));

        Assert.That(driver.Pieces, Is.EqualTo(new[] { 1, 1 }), "pages 2 and 3 must not be made exclusive");
        Assert.That(_process.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.DeviceExclusive));
        Assert.That(_process.Mm.EntryAt(buf + (2 * P)).Kind, Is.EqualTo(PteKind.Present));
        Assert.That(_process.Load<ulong>(buf + (3 * P)), Is.EqualTo(4UL));
        driver.Detach();
    }
}
