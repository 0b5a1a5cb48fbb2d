using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;

namespace Hmm.Runtime.Tests.Mm;

public class SmokeTests
{
    [Test]
    public void AnonymousMemoryReadsZeroThenWhatWasWritten()
    {
        using var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20 });
        var p = machine.CreateProcess("app");
        ulong buf = p.Mmap(4 << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        Assert.That(p.Load<int>(buf + 100), Is.Zero);
        p.Store(buf + 100, 5);
        Assert.That(p.Load<int>(buf + 100), Is.EqualTo(5));
        p.Store(buf + 4094, 0x1122334455667788UL);
        Assert.That(p.Load<ulong>(buf + 4094), Is.EqualTo(0x1122334455667788UL));
        var child = p.Fork();
        child.Store(buf + 100, 7);
        Assert.That(p.Load<int>(buf + 100), Is.EqualTo(5));
        Assert.That(child.Load<int>(buf + 100), Is.EqualTo(7));
        machine.CheckInvariants();
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Munmap(buf, 8192);
        Assert.That(rec.Events, Has.Count.EqualTo(1));
        Assert.That(rec.Events[0].Event, Is.EqualTo(NotifyEvent.Unmap));
        p.Mprotect(buf + 8192, 4096, Prot.Read);
        p.Madvise(buf + 16384, 4096, Advice.DontNeed);
        ulong moved = p.Mremap(buf + 8192, 4096, 8192, MremapFlags.MayMove);
        Assert.That(p.Load<int>(moved + 100), Is.Zero);
        machine.CheckInvariants();
        rec.Dispose();
        child.Exit();
        p.Exit();
        machine.CheckInvariants();
        Assert.That(machine.UsedPages, Is.Zero);
    }

    [Test]
    public void ThpAndFilesWork()
    {
        using var machine = new Machine(new MachineOptions { SystemMemory = 64L << 20, HugeTlbPages = 2 });
        var p = machine.CreateProcess("app");
        ulong buf = p.Mmap(4 << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        p.Madvise(buf, 4 << 20, Advice.HugePage);
        p.Store(buf + 100, 42);
        Assert.That(p.Mm.EntryAt(buf).IsHuge, Is.True);
        p.Munmap(buf + 4096, 4096);
        Assert.That(p.Load<int>(buf + 100), Is.EqualTo(42));
        Assert.Throws<SegmentationFault>(() => p.Load<int>(buf + 5000));
        machine.CheckInvariants();
        var f = machine.CreateFile(3 * 4096);
        f.Pwrite(10, new byte[] { 1, 2, 3 });
        ulong m = p.Mmap(3 * 4096, Prot.Read | Prot.Write, MapFlags.Shared, f);
        Assert.That(p.Load<byte>(m + 11), Is.EqualTo(2));
        p.Store<byte>(m + 12, 9);
        var back = new byte[3];
        f.Pread(10, back);
        Assert.That(back, Is.EqualTo(new byte[] { 1, 2, 9 }));
        ulong h = p.Mmap(2 << 20, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.HugeTlb);
        p.Store(h + 100, 3);
        var c = p.Fork();
        c.Store(h + 100, 4);
        Assert.That(p.Load<int>(h + 100), Is.EqualTo(3));
        machine.CheckInvariants();
        c.Exit();
        p.Exit();
        f.Dispose();
        machine.CheckInvariants();
        Assert.That(machine.UsedPages, Is.Zero);
    }
}
