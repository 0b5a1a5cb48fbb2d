using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Migration;

/// <summary>Driver misuse of migrate_vma the kernel BUGs/WARNs on → KernelBugException naming the rule (reference C MIG-R01, MIG-R02, MIG-R04, MIG-R05, MIG-R07, MIG-R08, MIG-R11).</summary>
public class MigrationRuleTests
{
    private static MigrateVma Args(Process p, ulong start, int pages, MigrateSelect flags, object? owner) => new()
    {
        Vma = p.Mm.FindVma(start),
        Start = start,
        End = start + (ulong)pages * P,
        Src = new ulong[pages],
        Dst = new ulong[pages],
        Flags = flags,
        PgmapOwner = owner,
    };

    private static void AssertRule(Action action, string rule)
    {
        var ex = Assert.Throws<KernelBugException>(action);
        Assert.That(ex!.Message, Does.Contain(rule));
    }

    // MIG-R02: a successful setup disposed without finalize is a bug (migration entries would persist).
    [Test]
    public void MigR02_DisposedWithoutFinalize_Throws()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);   // holes only: nothing gets a migration entry
        p.Mm.MmapLock.ReadLock();
        try
        {
            var args = Args(p, a, 4, MigrateSelect.System, dev);
            Assert.That(MigrateVma.Setup(args), Is.EqualTo(Errno.Ok));
            Assert.That(args.CPages, Is.EqualTo(4));
            AssertRule(args.Dispose, "MIG-R02");

            var paged = Args(p, a, 4, MigrateSelect.System, dev);
            Assert.That(MigrateVma.Setup(paged), Is.EqualTo(Errno.Ok));
            MigrateVma.Pages(paged);
            AssertRule(paged.Dispose, "MIG-R02");
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // MIG-R02: pages/finalize without setup, pages twice, finalize twice, setup twice without finalize.
    [Test]
    public void MigR02_PagesOrFinalizeWithoutSetupOrTwice_Throw()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        Fill(p, a, 4);
        p.Mm.MmapLock.ReadLock();
        try
        {
            var args = Args(p, a, 4, MigrateSelect.System, dev);
            AssertRule(() => MigrateVma.Pages(args), "MIG-R02");
            AssertRule(() => MigrateVma.Finalize(args), "MIG-R02");
            Assert.That(MigrateVma.Setup(args), Is.EqualTo(Errno.Ok));
            AssertRule(() => MigrateVma.Setup(args), "MIG-R02");
            MigrateVma.Pages(args);
            AssertRule(() => MigrateVma.Pages(args), "MIG-R02");
            MigrateVma.Finalize(args);
            AssertRule(() => MigrateVma.Finalize(args), "MIG-R02");
            args.Dispose();   // finalized: disposing is fine
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        for (int i = 0; i < 4; i++) Assert.That(p.Mm.EntryAt(a + (ulong)i * P).Kind, Is.EqualTo(PteKind.Present));
        AssertFilled(p, a, 4);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // MIG-R04: dst filled where src has no MIGRATE.
    [Test]
    public void MigR04_DstWhereSrcHasNoMigrate_Throws()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        p.Mm.MmapLock.ReadLock();
        try
        {
            var args = Args(p, a, 2, MigrateSelect.None, dev);   // populated system pages: not selected, src 0
            Assert.That(MigrateVma.Setup(args), Is.EqualTo(Errno.Ok));
            Assert.That(args.Src.Take(2), Is.All.EqualTo(0UL));
            Assert.That(dev.TryAllocate(0, out ulong d), Is.True);
            args.Dst[1] = MigratePfn.FromPfn(d);
            AssertRule(() => MigrateVma.Pages(args), "MIG-R04");
            MigrateVma.Finalize(args);   // releases the unused destination
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        AssertFilled(p, a, 2);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // MIG-R04: a destination that is not locked.
    [Test]
    public void MigR04_DstNotLocked_Throws()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        p.Mm.MmapLock.ReadLock();
        try
        {
            var args = Args(p, a, 2, MigrateSelect.System, dev);
            Assert.That(MigrateVma.Setup(args), Is.EqualTo(Errno.Ok));
            Assert.That(args.Src[0], Is.EqualTo(MigratePfn.Migrate));
            Assert.That(dev.TryAllocate(0, out ulong d), Is.True);
            machine.UnlockPage(d);
            args.Dst[0] = MigratePfn.FromPfn(d);
            AssertRule(() => MigrateVma.Pages(args), "MIG-R04");
            MigrateVma.Finalize(args);
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        Assert.That(dev.PageFrees, Is.EqualTo(dev.Allocations));
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.None));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // MIG-R01: setup without the mmap lock.
    [Test]
    public void MigR01_SetupWithoutMmapLock_Throws()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(2 * P, RW, PrivAnon);
        Fill(p, a, 2);
        MigrateVma args;
        p.Mm.MmapLock.ReadLock();
        try { args = Args(p, a, 2, MigrateSelect.System, dev); }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        AssertRule(() => MigrateVma.Setup(args), "MIG-R01");
        args.Dispose();
        Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present));
        AssertFilled(p, a, 2);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // MIG-R05: src[] must not change after setup, dst[] not after pages. The core finalizes from
    // its own view before reporting, so the pages stay consistent and readable.
    [Test]
    public void MigR05_SrcOrDstChangedAfterTheirStep_Throws()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        for (int i = 0; i < 4; i++) p.Store(a + ((ulong)i * P), 50 + i);
        p.Mm.MmapLock.ReadLock();
        try
        {
            var args = Args(p, a, 4, MigrateSelect.System, dev);
            Assert.That(MigrateVma.Setup(args), Is.EqualTo(Errno.Ok));
            args.Src[1] = 0;
            AssertRule(() => MigrateVma.Pages(args), "MIG-R05");

            var paged = Args(p, a, 4, MigrateSelect.System, dev);
            Assert.That(MigrateVma.Setup(paged), Is.EqualTo(Errno.Ok));
            Assert.That(dev.TryAllocate(0, out ulong page), Is.True);
            dev.Copy.Copy([new Hmm.Runtime.Devices.PageCopy(paged.Src[0] >> MigratePfn.Shift, page)]);
            paged.Dst[0] = MigratePfn.FromPfn(page);
            MigrateVma.Pages(paged);
            paged.Dst[0] = 0;
            AssertRule(() => MigrateVma.Finalize(paged), "MIG-R05");
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        for (int i = 0; i < 4; i++) Assert.That(p.Load<int>(a + ((ulong)i * P)), Is.EqualTo(50 + i));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // MIG-R07: selecting device pages without a PgmapOwner can never collect anything of the driver's.
    [Test]
    public void MigR07_DeviceSelectionWithoutOwner_Throws()
    {
        using var machine = NewMachine();
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        p.Mm.MmapLock.ReadLock();
        try { AssertRule(() => MigrateVma.Setup(Args(p, a, 4, MigrateSelect.DevicePrivate, owner: null)), "MIG-R07"); }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // MIG-R08: migrate_to_ram must migrate the faulting page (or fail); returning 0 with the page
    // still on the device would make the CPU refault forever.
    [Test]
    public void MigR08_MigrateToRamThatLeavesTheFaultPage_Throws()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, PrivAnon);
        p.Store(a, 7);
        Assert.That(dev.MigrateToDevice(p, a, 1), Is.EqualTo(1));
        dev.BreakMigrateToRam = true;
        var ex = Assert.Throws<KernelBugException>(() => p.Load<int>(a));
        Assert.That(ex!.Rule, Is.EqualTo("MIG-R08"));
        dev.BreakMigrateToRam = false;
        Assert.That(p.Load<int>(a), Is.EqualTo(7));
        machine.CheckInvariants();
        ExitAll(machine);
    }

    // MIG-R11: migration from inside an mmu notifier callback.
    [Test]
    public void MigR11_MigrationFromANotifierCallback_Throws()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(4 * P, RW, PrivAnon);
        p.Store(a, 1);
        KernelBugException? seen = null;
        using (var rec = NotifierRecorder.Attach(p.Mm))
        {
            rec.OnInvalidate = range =>
            {
                if (range.Event != NotifyEvent.Unmap || seen != null) return;
                var args = Args(p, a, 1, MigrateSelect.System, dev);
                try { MigrateVma.Setup(args); }
                catch (KernelBugException e) { seen = e; }
            };
            p.Munmap(a + (2 * P), P);
        }
        Assert.That(seen?.Rule, Is.EqualTo("MIG-R11"));
        machine.CheckInvariants();
        ExitAll(machine);
    }
}
