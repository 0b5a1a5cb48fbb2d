using Hmm.Generators.Behaviour.Tests.Drivers;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using NUnit.Framework;

namespace Hmm.Generators.Behaviour.Tests;

/// <summary>
/// [BeforeMigrateToRam]: the generated migrate_to_ram calls it first, before migrate_vma_setup
/// (nothing collected, no migration entry, no MIGRATE invalidation, U not held); false retries the
/// CPU fault; the driver's own migrations never call it.
/// </summary>
public sealed class MigrateToRamHookBehaviourTests
{
    private const ulong P = Page.Size;
    private Machine _machine = null!;
    private Process _process = null!;

    [SetUp]
    public void SetUp()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 256L << 20 });
        _process = _machine.CreateProcess("app");
    }

    [TearDown]
    public void TearDown()
    {
        _process.Exit();
        _machine.CheckInvariants();
        _machine.Dispose();
    }

    private ulong MapWritten(int pages)
    {
        ulong len = (ulong)pages * P;
        ulong map = _process.Mmap(len + Page.PmdSize, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        ulong buf = (map + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
        _process.Madvise(buf, len, Advice.NoHugePage);
        for (int i = 0; i < pages; i++) _process.Store(buf + ((ulong)i * P), 0xD000UL + (ulong)i);
        return buf;
    }

    private HookedDevmemDriver MigratedDriver(ulong buf, int pages)
    {
        var driver = new HookedDevmemDriver();
        Assert.That(driver.Attach(new SimDevice(_machine, "hooked"), _process), Is.EqualTo(Errno.Ok));
        Assert.That(driver.MigrateToDevice(buf, buf + ((ulong)pages * P), out long moved), Is.EqualTo(Errno.Ok));
        Assert.That(moved, Is.EqualTo(pages));
        return driver;
    }

    [Test]
    public void CpuFault_CallsTheHookBeforeTheMigrationSequenceBegins()
    {
        ulong buf = MapWritten(4);
        var driver = MigratedDriver(buf, 4);
        int invalidationsBefore = driver.MigrateInvalidations;

        Assert.That(_process.Load<ulong>(buf + (2 * P)), Is.EqualTo(0xD002UL));

        Assert.That(driver.Seen, Has.Count.EqualTo(1), "one CPU fault, one hook call");
        var seen = driver.Seen[0];
        Assert.Multiple(() =>
        {
            Assert.That(seen.Address, Is.EqualTo(buf + (2 * P)));
            Assert.That(seen.Entry, Is.EqualTo(PteKind.DevicePrivate), "nothing collected yet: no migration entry");
            Assert.That(seen.MigrateInvalidations, Is.EqualTo(invalidationsBefore), "before migrate_vma_setup's MIGRATE invalidation");
            Assert.That(seen.PagesMigratedToSystem, Is.Zero);
            Assert.That(seen.UpdateLockHeld, Is.False, "U is not held");
            Assert.That(seen.MmapLockHeld, Is.True, "the core holds the mmap read lock");
            Assert.That(driver.MigrateInvalidations, Is.GreaterThan(invalidationsBefore), "then the migration ran");
            Assert.That(driver.PagesMigratedToSystem, Is.EqualTo(1));
            Assert.That(_process.Mm.EntryAt(buf + (2 * P)).Kind, Is.EqualTo(PteKind.Present));
        });
        driver.Detach();
        driver.RemoveDeviceMemory();
    }

    [Test]
    public void HookReturningFalse_RetriesTheFault_UntilItSaysGoOn()
    {
        ulong buf = MapWritten(2);
        var driver = MigratedDriver(buf, 2);
        driver.Holds = 3;

        Assert.That(_process.Load<ulong>(buf + P), Is.EqualTo(0xD001UL), "the access completes once the hook lets it through");

        Assert.Multiple(() =>
        {
            Assert.That(driver.Seen, Has.Count.EqualTo(4), "three held attempts, then the one that migrated");
            Assert.That(driver.Seen.Select(s => s.Entry), Is.All.EqualTo(PteKind.DevicePrivate), "a held attempt takes nothing");
            Assert.That(driver.Seen.Select(s => s.PagesMigratedToSystem), Is.All.Zero);
            Assert.That(driver.PagesMigratedToSystem, Is.EqualTo(1), "migrated once");
            Assert.That(_process.Mm.EntryAt(buf).Kind, Is.EqualTo(PteKind.DevicePrivate), "the other page stayed");
        });
        driver.Detach();
        driver.RemoveDeviceMemory();
    }

    [Test]
    public void DriverMigrations_AndEviction_DoNotCallTheHook()
    {
        ulong buf = MapWritten(8);
        var driver = MigratedDriver(buf, 8);

        Assert.That(driver.MigrateToSystem(buf, buf + (4 * P), out long back), Is.EqualTo(Errno.Ok));
        Assert.That(back, Is.EqualTo(4));
        Assert.That(driver.RemoveDeviceMemory(), Is.EqualTo(Errno.Ok));

        Assert.That(driver.Seen, Is.Empty, "only a CPU fault on a device page reaches migrate_to_ram");
        for (int i = 0; i < 8; i++) Assert.That(_process.Load<ulong>(buf + ((ulong)i * P)), Is.EqualTo(0xD000UL + (ulong)i));
        Assert.That(driver.Seen, Is.Empty, "every page was already back in system memory");
        driver.Detach();
    }

    [Test]
    public void SharedMemory_HandsTheFaultToTheFile_WhoseHookRunsFirst()
    {
        ulong buf = MapWritten(2);
        var device = new SimDevice(_machine, "hookedshared");
        var file = new HookedSharedFile(new HookedSharedDevmem());
        Assert.That(file.Attach(device, _process), Is.EqualTo(Errno.Ok));
        Assert.That(file.MigrateToDevice(buf, buf + (2 * P)), Is.EqualTo(Errno.Ok));

        Assert.That(_process.Load<ulong>(buf), Is.EqualTo(0xD000UL));

        Assert.That(file.EntriesSeen, Is.EqualTo(new[] { PteKind.DevicePrivate }));
        Assert.That(file.PagesMigratedToSystem, Is.EqualTo(1));
        file.Detach();
        file.Memory.RemoveDeviceMemory();
    }
}
