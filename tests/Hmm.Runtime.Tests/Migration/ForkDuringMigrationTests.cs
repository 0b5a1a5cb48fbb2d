using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Migration;

/// <summary>
/// A fork between migrate_device_pages and migrate_device_finalize (device memory being evicted,
/// the page already copied, its mappings still migration entries): the page comes back shared, so
/// neither side may reuse it on a write. Found by exploration (fork-migration, PCT seed 45).
/// </summary>
public class ForkDuringMigrationTests
{
    [TestCase(true)]
    [TestCase(false)]
    public void A_fork_between_pages_and_finalize_leaves_the_new_page_shared(bool fork)
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(P, RW, PrivAnon);
        p.Store(a, 41UL);
        Assert.That(dev.MigrateToDevice(p, a, 1), Is.EqualTo(1));
        ulong devicePfn = p.Mm.EntryAt(a).Pfn;

        // migrate_device_range → copy → migrate_device_pages (eviction, as device removal does).
        var src = new ulong[1];
        var dst = new ulong[1];
        Assert.That(MigrateDevice.Range(machine, src, devicePfn), Is.EqualTo(Errno.Ok));
        Assert.That(SystemPages.TryAllocateLocked(machine, 0, out ulong systemPfn), Is.True);
        dev.Copy.Copy([new PageCopy(devicePfn, systemPfn)]);
        dst[0] = MigratePfn.FromPfn(systemPfn);
        MigrateDevice.Pages(machine, src, dst);
        var child = fork ? p.Fork("child") : null;
        MigrateDevice.Finalize(machine, src, dst);

        Assert.That(p.Mm.EntryAt(a).Pfn, Is.EqualTo(systemPfn));
        bool exclusive = (machine.Frames.Flags(systemPfn) & PageFlags.AnonExclusive) != 0;
        if (child != null)
        {
            Assert.That(exclusive, Is.False, "mapped by parent and child: not exclusive");
            child.Store(a, 777UL);
            Assert.Multiple(() =>
            {
                Assert.That(p.Load<ulong>(a), Is.EqualTo(41UL), "the child's write must not reach the parent");
                Assert.That(child.Load<ulong>(a), Is.EqualTo(777UL));
                Assert.That(child.Mm.EntryAt(a).Pfn, Is.Not.EqualTo(systemPfn), "the child's write copied the page");
            });
            child.Exit();
        }
        else
        {
            Assert.That(exclusive, Is.True, "without a fork the page stays exclusive to its only mapper");
            p.Store(a, 42UL);
            Assert.That(p.Mm.EntryAt(a).Pfn, Is.EqualTo(systemPfn), "an exclusive page is reused on write");
        }
        machine.CheckInvariants();
        ExitAll(machine);
    }
}
