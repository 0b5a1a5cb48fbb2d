using Hmm.Runtime;
using Hmm.Runtime.Interleaving;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Stress;

/// <summary>
/// Races of the generated device memory (<c>[DeviceMemory]</c>) that dmirror, now a DSL driver,
/// runs into: each window lies between two statements of generated code, reached through the
/// generated hook points (<see cref="DeviceMemoryHookPoints"/>).
/// </summary>
public partial class RaceRegressionTests
{
    /// <summary>
    /// The SIGBUS of the <c>Everything(0)</c> soak (session 4): the generated hot-add pushed a new
    /// chunk's pages on the free lists before it published the chunk (its slot, its per-page
    /// users). A second device thread took one of those pages at once; recording the file it
    /// migrated the page for (zone_device_data) found no chunk and recorded nothing, so the CPU
    /// fault on that page later had no driver to hand migrate_to_ram to: VM_FAULT_SIGBUS on a
    /// page whose memory was plugged and whose data was intact. The chunk is now published first.
    /// </summary>
    [Test]
    public void DevicePageTakenFromAChunkWhileItIsHotAdded_MigratesBackOnACpuTouch()
    {
        // 2 MiB chunks (512 pages): the first chunk is filled, so the next migration hot-adds.
        var dev = DmirrorDevice.Create(Machine, 0, 2UL << 20);
        using var hotAdder = dev.Open(P);
        using var racer = dev.Open(P);
        for (int i = 0; i < 4; i++)
        {
            ulong fill = Filled(128, 40 + i);   // 128-page VMAs: no THP, so 512 base device pages
            Assert.That(hotAdder.MigrateToDevice(fill, 128, Mirror(128), out _), Is.EqualTo(Errno.Ok));
        }
        Assert.That(dev.FreeListLengths, Is.EqualTo((0, 0)), "the first chunk should be used up");
        ulong first = Filled(1, 7), second = Filled(1, 9);

        int plugged = 0;
        Errno racerResult = Errno.EINVAL;
        Exception? racerFailure = null;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point != TestHookPoint.DeviceChunkPlugged || Interlocked.Increment(ref plugged) != 1) return;
            // The new chunk's pages are on the free lists: another file's migration takes one now.
            var t = new Thread(() =>
            {
                try { racerResult = racer.MigrateToDevice(second, 1, Mirror(1), out _); }
                catch (Exception e) { racerFailure = e; }
            });
            t.Start();
            Assert.That(t.Join(Watchdog), Is.True, "the racing migration did not finish");
        };
        Assert.That(hotAdder.MigrateToDevice(first, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        TestHooks.Callback = null;

        Assert.That(plugged, Is.EqualTo(1), "the migration should have hot-added one chunk");
        Assert.That(racerFailure, Is.Null);
        Assert.That(racerResult, Is.EqualTo(Errno.Ok));
        Assert.That(dev.ChunkCount, Is.EqualTo(2));
        Assert.That(P.Mm.EntryAt(second).Kind, Is.EqualTo(PteKind.DevicePrivate), "the racer's page should be on the device");
        // The CPU touch: migrate_to_ram must find the file the page was migrated for.
        Assert.That(CpuRead(second, 1), Is.EqualTo(Pattern(1, 9)));
        Assert.That(CpuRead(first, 1), Is.EqualTo(Pattern(1, 7)));
        Assert.That(P.Mm.EntryAt(second).Kind, Is.EqualTo(PteKind.Present));
        hotAdder.Close();
        racer.Close();
        Machine.CheckInvariants();
    }

    /// <summary>Negative case of the above: without a racer, the page the hot-adding migration itself took also comes back on a CPU touch.</summary>
    [Test]
    public void DevicePageOfAHotAddedChunk_MigratesBackOnACpuTouch()
    {
        var dev = DmirrorDevice.Create(Machine, 0, 2UL << 20);
        using var m = dev.Open(P);
        for (int i = 0; i < 4; i++)
            Assert.That(m.MigrateToDevice(Filled(128, 50 + i), 128, Mirror(128), out _), Is.EqualTo(Errno.Ok));
        ulong a = Filled(1, 11);
        int plugged = 0;
        TestHooks.Callback = (point, _, _) => { if (point == TestHookPoint.DeviceChunkPlugged) Interlocked.Increment(ref plugged); };
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        TestHooks.Callback = null;
        Assert.That(plugged, Is.EqualTo(1));
        Assert.That(CpuRead(a, 1), Is.EqualTo(Pattern(1, 11)));
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// MIG-R10 (a573ef2, found by a 600 s <c>Everything(0)</c> soak): the generated page_free
    /// checked <c>pgmap.IsRemoving</c> before taking the free-list lock. A free that looked before
    /// RemoveDeviceMemory marked the chunk then pushed the page back after the removal's last drop
    /// of the free lists, and the next allocation initialised a page of a removing pagemap. The
    /// check is under the lock the drop takes. Here the whole removal runs while a page_free
    /// stands just before that lock; the page must not come back, and the next migration gets a
    /// page of a new chunk.
    /// </summary>
    [Test]
    public void DevicePageFreedWhileItsChunkIsRemoved_IsNotHandedOutAgain()
    {
        var dev = DmirrorDevice.Create(Machine, 0, 2UL << 20);
        using var m = dev.Open(P);
        using var remover = dev.Open(P);
        ulong a = Filled(1, 3), b = Filled(1, 5);
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        ulong devicePage = P.Mm.EntryAt(a).Pfn;

        int freeing = 0;
        Exception? removerFailure = null;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point != TestHookPoint.DevicePageFreeing || address != devicePage || Interlocked.Increment(ref freeing) != 1) return;
            // page_free ran the driver's part and is about to give the page back: the device's memory is removed now.
            var t = new Thread(() =>
            {
                try { remover.Release(); }
                catch (Exception e) { removerFailure = e; }
            });
            t.Start();
            Assert.That(t.Join(Watchdog), Is.True, "the removal did not finish");
        };
        Assert.That(m.MigrateToSystem(a, 1, out var counters), Is.EqualTo(Errno.Ok));
        TestHooks.Callback = null;

        Assert.That(freeing, Is.EqualTo(1), "the migration back should have freed the device page");
        Assert.That(removerFailure, Is.Null);
        Assert.That(counters.Cpages, Is.EqualTo(1));
        Assert.That(dev.FreeListLengths, Is.EqualTo((0, 0)), "the page of the removed chunk went back on the free list");
        // The next allocation hot-adds; before the fix it initialised the freed page (MIG-R10).
        Assert.That(m.MigrateToDevice(b, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        Assert.That(P.Mm.EntryAt(b).Pfn, Is.Not.EqualTo(devicePage));
        Assert.That(CpuRead(a, 1), Is.EqualTo(Pattern(1, 3)));
        Assert.That(CpuRead(b, 1), Is.EqualTo(Pattern(1, 5)));
        m.Close();
        remover.Close();
        Assert.That(dev.ChunkCount, Is.EqualTo(0), "the last close unplugs every chunk, the one removed under the free too");
        Machine.CheckInvariants();
    }
}
