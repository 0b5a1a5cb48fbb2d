using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Mm;

/// <summary>exit and the OOM reaper: everything freed, and their events (reference D "process exit", "OOM reaper").</summary>
public class ExitTests
{
    [Test]
    public void Exit_FreesEverything_OnceFilesAreDisposed()
    {
        using var machine = NewMachine(hugeTlbPages: 1);
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(4 * P);
        ulong a = p.Mmap(Huge, RW, PrivAnon);
        p.Madvise(a, Huge, Advice.HugePage);
        p.Store(a, 1);
        ulong b = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, b, 4);
        ulong s = p.Mmap(4 * P, RW, SharedAnon);
        Fill(p, s, 4);
        ulong m = p.Mmap(4 * P, RW, MapFlags.Shared, f);
        Fill(p, m, 4);
        ulong pm = p.Mmap(4 * P, RW, MapFlags.Private, f);
        Fill(p, pm, 2);
        Assert.That(p.Mm.RssAnon, Is.EqualTo(512 + 4 + 2));
        Assert.That(p.Mm.RssFile, Is.EqualTo(4 + 4), "shared anonymous (shmem) counts as file");
        ulong h = p.Mmap(Huge, RW, PrivAnon | MapFlags.HugeTlb);
        p.Store(h, 1);
        Assert.That(machine.HugeTlbFreePages, Is.Zero);
        machine.CheckInvariants();
        p.Exit();
        Assert.That(p.HasExited, Is.True);
        Assert.That(p.Mm.IsTornDown, Is.True);
        Assert.That(p.Mm.RssAnon, Is.Zero);
        Assert.That(p.Mm.RssFile, Is.Zero);
        Assert.That(p.Mm.PageTablePages, Is.EqualTo(1), "only the PGD is left");
        Assert.That(machine.UsedPages, Is.EqualTo(4), "the file's page cache stays until it is disposed");
        Assert.That(machine.HugeTlbFreePages, Is.EqualTo(1));
        var buf = new byte[4];
        f.Pread(P, buf);
        Assert.That(BitConverter.ToInt32(buf), Is.EqualTo(1001));
        f.Dispose();
        Assert.That(machine.UsedPages, Is.Zero);
        machine.CheckInvariants();
    }

    [Test]
    public void Exit_Twice_Throws_AndSyscallsAfterExitThrow()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, PrivAnon);
        p.Exit();
        Assert.Throws<InvalidOperationException>(() => p.Exit());
        Assert.Throws<InvalidOperationException>(() => p.Load<int>(a));
        Assert.That(machine.Processes, Is.Empty);
        machine.CheckInvariants();
    }

    // Reference D "process exit": RELEASE over [0, ULONG_MAX) first, then UNMAP of everything over [0, ULONG_MAX).
    [Test]
    public void Event_Exit_RaisesReleaseThenUnmapOverEverything()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        using var rec = NotifierRecorder.Attach(p.Mm);
        p.Exit();
        Assert.That(rec.Events, Is.EqualTo(new[]
        {
            Ev(NotifyEvent.Release, 0, ulong.MaxValue),
            Ev(NotifyEvent.Unmap, 0, ulong.MaxValue),
        }));
        rec.Dispose();
        machine.CheckInvariants();
        Assert.That(machine.UsedPages, Is.Zero);
    }

    // Reference D "OOM reaper": UNMAP, non-blockable, one per reaped VMA; shared file mappings are not reaped.
    [Test]
    public void Event_OomReap_RaisesNonBlockableUnmapPerVma_AndFreesTheMemory()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        var f = machine.CreateFile(2 * P);
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        ulong b = p.Mmap(2 * P, Prot.Read, PrivAnon, addr: a - 8 * P);
        ulong m = p.Mmap(2 * P, RW, MapFlags.Shared, f, addr: a - 16 * P);
        Fill(p, a, 4);
        Assert.That(p.Load<int>(b), Is.Zero);
        Fill(p, m, 2);
        using var rec = NotifierRecorder.Attach(p.Mm);
        var skipped = p.OomKill();
        Assert.That(skipped, Is.Empty);
        Assert.That(rec.Events, Is.EqualTo(new[]
        {
            Ev(NotifyEvent.Unmap, b, b + 2 * P, blockable: false),
            Ev(NotifyEvent.Unmap, a, a + 4 * P, blockable: false),
        }));
        Assert.That(p.Mm.RssAnon, Is.Zero);
        Assert.That(p.Mm.RssFile, Is.EqualTo(2), "shared file pages are not reaped");
        Assert.That(p.Mm.EntryAt(a).IsNone, Is.True);
        Assert.That(Layout(p), Has.Length.EqualTo(3), "VMAs stay until exit");
        Assert.Throws<InvalidOperationException>(() => p.Load<int>(a));
        machine.CheckInvariants();
        rec.Dispose();
        p.Exit();
        f.Dispose();
        machine.CheckInvariants();
        Assert.That(machine.UsedPages, Is.Zero);
    }

    // Reference D "OOM reaper" + B.3: a callback returning false makes the reaper skip that VMA; its PTEs are unchanged.
    [Test]
    public void Event_OomReap_RefusedVmaIsSkipped_WithItsPtesUnchanged()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        ulong b = p.Mmap(4 * P, Prot.Read, PrivAnon, addr: a - 8 * P);
        Fill(p, a, 4);
        Assert.That(p.Load<int>(b), Is.Zero);
        var before = Enumerable.Range(0, 4).Select(i => p.Mm.EntryAt(a + (ulong)i * P)).ToArray();
        using var rec = NotifierRecorder.Attach(p.Mm);
        rec.Refuse = r => r.Start == a;
        var skipped = p.OomKill();
        Assert.That(skipped, Is.EqualTo(new[] { (a, a + 4 * P) }));
        Assert.That(rec.Events, Is.EqualTo(new[]
        {
            Ev(NotifyEvent.Unmap, b, b + 4 * P, blockable: false),
            Ev(NotifyEvent.Unmap, a, a + 4 * P, blockable: false),
        }));
        Assert.That(Enumerable.Range(0, 4).Select(i => p.Mm.EntryAt(a + (ulong)i * P)), Is.EqualTo(before));
        Assert.That(p.Mm.RssAnon, Is.EqualTo(4));
        Assert.That(PeekPhysical(p, a + 3 * P), Is.EqualTo((byte)(1003 & 0xFF)));
        machine.CheckInvariants();
        rec.Refuse = null;
        rec.Dispose();
        p.Exit();
        machine.CheckInvariants();
        Assert.That(machine.UsedPages, Is.Zero);
    }
}
