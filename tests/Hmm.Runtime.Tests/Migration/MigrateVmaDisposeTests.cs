using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Migration;

/// <summary>
/// <see cref="MigrateVma.Dispose"/> of a migration left between setup and finalize (issue 8,
/// failure 5). A driver that forgets migrate_vma_finalize is reported (MIG-R02); an exception
/// unwinding through the driver's <c>using</c> is the real error and must surface unchanged,
/// with the migration finalized on the way out. Linux has no exceptions here: the rule being
/// simulated is only that migrate_vma_finalize follows every successful migrate_vma_setup.
/// </summary>
public class MigrateVmaDisposeTests
{
    private const int Pages = 4;

    private sealed class CopyEngineFault(string message) : Exception(message);

    private static MigrateVma Args(Process p, ulong start, TestDevice dev) => new()
    {
        Vma = p.Mm.FindVma(start),
        Start = start,
        End = start + Pages * P,
        Src = new ulong[Pages],
        Dst = new ulong[Pages],
        Flags = MigrateSelect.System,
        PgmapOwner = dev,
    };

    /// <summary>The driver's half of migrate_vma_pages: a destination for every collected page, the data copied in.</summary>
    private static void AllocateAndCopy(MigrateVma args, TestDevice dev)
    {
        for (int i = 0; i < Pages; i++)
        {
            if ((args.Src[i] & MigratePfn.Migrate) == 0) continue;
            Assert.That(dev.TryAllocate(0, out ulong page), Is.True);
            dev.Copy.Copy([new PageCopy(args.Src[i] >> MigratePfn.Shift, page, 0)]);
            args.Dst[i] = MigratePfn.FromPfn(page);
        }
    }

    private static void AssertNothingLockedOrInFlight(Machine machine, Process p, ulong a, PteKind expected)
    {
        for (int i = 0; i < Pages; i++)
        {
            var e = p.Mm.EntryAt(a + (ulong)i * P);
            Assert.That(e.Kind, Is.EqualTo(expected), $"page {i}");
            Assert.That(machine.Frames.Flags(e.Pfn) & PageFlags.Locked, Is.EqualTo(PageFlags.None), $"page {i} left locked");
        }
    }

    [Test]
    public void ExceptionAfterSetup_SurfacesUnchanged_AndTheSourcesAreRestored()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Pages * P, RW, PrivAnon);
        Fill(p, a, Pages);
        var fault = new CopyEngineFault("copy engine fault between setup and finalize");
        p.Mm.MmapLock.ReadLock();
        try
        {
            var thrown = Assert.Throws<CopyEngineFault>(() =>
            {
                using var args = Args(p, a, dev);
                Assert.That(MigrateVma.Setup(args), Is.EqualTo(Errno.Ok));
                Assert.That(args.CPages, Is.EqualTo(Pages));
                Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Migration), "setup unmapped the sources");
                throw fault;
            });
            Assert.That(thrown, Is.SameAs(fault), "the original exception surfaces, not MIG-R02");
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        AssertNothingLockedOrInFlight(machine, p, a, PteKind.Present);
        AssertFilled(p, a, Pages);
        Assert.That(dev.Allocations, Is.Zero);
        machine.CheckInvariants();
        ExitAll(machine);
        Assert.That(machine.UsedPages, Is.Zero);
    }

    [Test]
    public void ExceptionAfterPages_SurfacesUnchanged_AndTheCommitCompletes()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Pages * P, RW, PrivAnon);
        Fill(p, a, Pages);
        var fault = new CopyEngineFault("device page-table update failed after migrate_vma_pages");
        p.Mm.MmapLock.ReadLock();
        try
        {
            var thrown = Assert.Throws<CopyEngineFault>(() =>
            {
                using var args = Args(p, a, dev);
                Assert.That(MigrateVma.Setup(args), Is.EqualTo(Errno.Ok));
                AllocateAndCopy(args, dev);
                MigrateVma.Pages(args);
                throw fault;
            });
            Assert.That(thrown, Is.SameAs(fault));
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        AssertNothingLockedOrInFlight(machine, p, a, PteKind.DevicePrivate);
        AssertFilled(p, a, Pages);   // faults every page back from the device
        machine.CheckInvariants();
        ExitAllAndCheckDevices(machine, dev);
    }

    /// <summary>Finalizing on the way out may itself find a driver bug (here MIG-R05): the first exception still wins.</summary>
    [Test]
    public void ExceptionAfterSetup_WithScribbledSrc_StillSurfacesTheOriginal()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Pages * P, RW, PrivAnon);
        Fill(p, a, Pages);
        var fault = new CopyEngineFault("fault after the driver scribbled src[]");
        p.Mm.MmapLock.ReadLock();
        try
        {
            var thrown = Assert.Throws<CopyEngineFault>(() =>
            {
                using var args = Args(p, a, dev);
                Assert.That(MigrateVma.Setup(args), Is.EqualTo(Errno.Ok));
                args.Src[1] = 0;
                throw fault;
            });
            Assert.That(thrown, Is.SameAs(fault));
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        AssertNothingLockedOrInFlight(machine, p, a, PteKind.Present);
        AssertFilled(p, a, Pages);
        machine.CheckInvariants();
        ExitAll(machine);
    }

    /// <summary>
    /// Negative cases: no exception unwinds through Dispose, so a forgotten finalize is MIG-R02 —
    /// also when the driver caught and swallowed an exception inside the window, and when setup
    /// and the abandoned Dispose both run inside one catch block (the exception being handled
    /// there was already being handled at setup). The machine is consistent afterwards either way.
    /// </summary>
    [Test]
    public void NoExceptionUnwinding_ForgottenFinalizeIsMigR02_AfterRestoring()
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Pages * P, RW, PrivAnon);
        Fill(p, a, Pages);
        p.Mm.MmapLock.ReadLock();
        try
        {
            var plain = Args(p, a, dev);
            Assert.That(MigrateVma.Setup(plain), Is.EqualTo(Errno.Ok));
            Assert.That(Assert.Throws<KernelBugException>(plain.Dispose)!.Rule, Is.EqualTo("MIG-R02"));
            AssertNothingLockedOrInFlight(machine, p, a, PteKind.Present);

            var swallowed = Args(p, a, dev);
            Assert.That(MigrateVma.Setup(swallowed), Is.EqualTo(Errno.Ok));
            try { throw new CopyEngineFault("handled by the driver"); }
            catch (CopyEngineFault) { }
            Assert.That(Assert.Throws<KernelBugException>(swallowed.Dispose)!.Rule, Is.EqualTo("MIG-R02"));
            AssertNothingLockedOrInFlight(machine, p, a, PteKind.Present);

            try { throw new CopyEngineFault("an earlier error the driver is handling"); }
            catch (CopyEngineFault)
            {
                var inCatch = Args(p, a, dev);
                Assert.That(MigrateVma.Setup(inCatch), Is.EqualTo(Errno.Ok));
                Assert.That(Assert.Throws<KernelBugException>(inCatch.Dispose)!.Rule, Is.EqualTo("MIG-R02"));
            }
            AssertNothingLockedOrInFlight(machine, p, a, PteKind.Present);
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        AssertFilled(p, a, Pages);
        machine.CheckInvariants();
        ExitAll(machine);
        Assert.That(machine.UsedPages, Is.Zero);
    }
}
