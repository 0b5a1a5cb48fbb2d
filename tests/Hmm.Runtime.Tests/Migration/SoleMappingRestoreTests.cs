using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Interleaving;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Tests.Support;
using NUnit.Framework;
using static Hmm.Runtime.Tests.Mm.MmTest;

namespace Hmm.Runtime.Tests.Migration;

/// <summary>
/// migrate_vma_finalize's range fast path (issue 13): entries collected from their only mapping
/// (mapcount 1) are put back by walking the range's page tables, one PTL hold per table, instead
/// of an rmap walk per page; everything else — a page shared with a fork, any finalize after a
/// fork or VMA split anywhere since collect — takes the rmap walk. Each scenario runs twice on
/// fresh machines, once as the runtime chooses and once with the rmap path forced, and the page
/// tables (raw entry words, both processes), page counts, RSS and contents must be identical.
/// </summary>
public class SoleMappingRestoreTests
{
    private const int Pages = 24;

    [TearDown]
    public void RemoveHook()
    {
        TestHooks.Callback = null;
        MigrationEngine.t_generalPathOnly = false;
    }

    [Test]
    public void A_plain_range_is_restored_by_the_range_walk_and_ends_as_the_rmap_path_leaves_it()
    {
        var fast = PlainRange(generalOnly: false);
        var general = PlainRange(generalOnly: true);
        Assert.Multiple(() =>
        {
            Assert.That(fast.RangeRestored, Is.EqualTo(new long[] { Pages, Pages }), "to the device and back: every entry by the range walk");
            Assert.That(general.RangeRestored, Is.Empty, "forced rmap path: the range walk never ran");
            Assert.That(fast.State, Is.EqualTo(general.State), "page tables, counts and contents");
        });
    }

    [Test]
    public void A_page_shared_with_a_fork_takes_the_rmap_path_and_its_other_mapping_is_restored_too()
    {
        var fast = ForkShared(generalOnly: false);
        var general = ForkShared(generalOnly: true);
        Assert.Multiple(() =>
        {
            Assert.That(fast.RangeRestored, Is.EqualTo(new long[] { Pages - 1 }), "every page but the shared one by the range walk");
            Assert.That(general.RangeRestored, Is.Empty);
            Assert.That(fast.State, Is.EqualTo(general.State), "parent and child page tables, counts and contents");
        });
    }

    [Test]
    public void A_fork_anywhere_between_setup_and_finalize_sends_every_entry_down_the_rmap_path()
    {
        var fast = ForkElsewhereMidMigration(generalOnly: false);
        var general = ForkElsewhereMidMigration(generalOnly: true);
        Assert.Multiple(() =>
        {
            Assert.That(fast.RangeRestored, Is.Empty, "the rmap generation moved since collect: no range walk");
            Assert.That(fast.State, Is.EqualTo(general.State));
        });
    }

    [Test]
    public void Entries_left_without_a_destination_go_back_to_their_source_through_the_range_walk()
    {
        var fast = NoDestinations(generalOnly: false);
        var general = NoDestinations(generalOnly: true);
        Assert.Multiple(() =>
        {
            Assert.That(fast.RangeRestored, Is.EqualTo(new long[] { Pages }));
            Assert.That(general.RangeRestored, Is.Empty);
            Assert.That(fast.State, Is.EqualTo(general.State));
        });
    }

    // ------------------------------------------------------------------ scenarios

    private static Outcome PlainRange(bool generalOnly)
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Pages * P, RW, PrivAnon);
        Fill(p, a, Pages);
        var restored = Watch(p, generalOnly);
        Assert.That(dev.MigrateToDevice(p, a, Pages), Is.EqualTo(Pages));
        var onDevice = Snapshot(machine, a, p);
        Assert.That(onDevice.Split(';').Count(s => s.Contains("DevicePrivate", StringComparison.Ordinal)), Is.EqualTo(Pages), "every page on the device");
        Assert.That(dev.MigrateToSystem(p, a, Pages), Is.EqualTo(Pages));
        var counts = restored.ToArray();
        string back = Snapshot(machine, a, p);
        AssertFilled(p, a, Pages);
        machine.CheckInvariants();
        ExitAllAndCheckDevices(machine, dev);
        return new Outcome(counts, onDevice + "|" + back);
    }

    private static Outcome ForkShared(bool generalOnly)
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Pages * P, RW, PrivAnon);
        Fill(p, a, Pages);
        var child = p.Fork("child");
        // The parent's writes break COW on every page but the last, which stays mapped by both.
        for (int i = 0; i < Pages - 1; i++) p.Store(a + ((ulong)i * P), 5000 + i);
        ulong shared = a + ((Pages - 1) * P);
        Assert.That(machine.Frames.MapCount(p.Mm.EntryAt(shared).Pfn), Is.EqualTo(2), "precondition: the last page is shared");
        var restored = Watch(p, generalOnly);
        Assert.That(dev.MigrateToDevice(p, a, Pages), Is.EqualTo(Pages));
        Assert.That(child.Mm.EntryAt(shared).Kind, Is.EqualTo(PteKind.DevicePrivate), "the child's mapping of the shared page moved too");
        Assert.That(child.Mm.EntryAt(shared).Pfn, Is.EqualTo(p.Mm.EntryAt(shared).Pfn));
        var counts = restored.ToArray();
        string state = Snapshot(machine, a, p, child);
        // CPU loads bring the pages back one by one (migrate_to_ram): the shared one for both.
        for (int i = 0; i < Pages - 1; i++) Assert.That(p.Load<int>(a + ((ulong)i * P)), Is.EqualTo(5000 + i));
        Assert.That(p.Load<int>(shared), Is.EqualTo(1000 + Pages - 1));
        AssertFilled(child, a, Pages);
        machine.CheckInvariants();
        ExitAllAndCheckDevices(machine, dev);
        return new Outcome(counts, state);
    }

    private static Outcome ForkElsewhereMidMigration(bool generalOnly)
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        var other = machine.CreateProcess("other");
        ulong a = p.Mmap(Pages * P, RW, PrivAnon);
        ulong b = other.Mmap(P, RW, PrivAnon);
        Fill(p, a, Pages);
        other.Store(b, 7);
        var restored = Watch(p, generalOnly);
        p.Mm.MmapLock.ReadLock();
        try
        {
            var args = NewArgs(p, a);
            Assert.That(MigrateVma.Setup(args), Is.EqualTo(Errno.Ok));
            // Another process forks meanwhile (on another thread: its mmap lock is not ours), and
            // the machine's rmap generation moves.
            Process? otherChild = null;
            var forker = new Thread(() => otherChild = other.Fork("other-child"));
            forker.Start();
            forker.Join();
            Assert.That(otherChild, Is.Not.Null);
            Destinations(dev, args);
            MigrateVma.Pages(args);
            MigrateVma.Finalize(args);
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        var counts = restored.ToArray();
        Assert.That(machine.Processes.Single(q => q.Name == "other-child").Load<int>(b), Is.EqualTo(7), "the fork elsewhere went through");
        string state = Snapshot(machine, a, p);
        AssertFilled(p, a, Pages);
        machine.CheckInvariants();
        ExitAllAndCheckDevices(machine, dev);
        return new Outcome(counts, state);
    }

    private static Outcome NoDestinations(bool generalOnly)
    {
        using var machine = NewMachine();
        var dev = new TestDevice(machine, DevicePageKind.Private);
        var p = machine.CreateProcess("app");
        ulong a = p.Mmap(Pages * P, RW, PrivAnon);
        Fill(p, a, Pages);
        var before = new ulong[Pages];
        for (int i = 0; i < Pages; i++) before[i] = p.Mm.EntryAt(a + ((ulong)i * P)).Pfn;
        var restored = Watch(p, generalOnly);
        p.Mm.MmapLock.ReadLock();
        try
        {
            var args = NewArgs(p, a);
            Assert.That(MigrateVma.Setup(args), Is.EqualTo(Errno.Ok));
            Assert.That(p.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Migration), "collected");
            MigrateVma.Pages(args);   // no destination anywhere: nothing commits
            MigrateVma.Finalize(args);
        }
        finally { p.Mm.MmapLock.ReadUnlock(); }
        var counts = restored.ToArray();
        for (int i = 0; i < Pages; i++)
        {
            var e = p.Mm.EntryAt(a + ((ulong)i * P));
            Assert.That((e.Kind, e.Pfn, e.IsWritable), Is.EqualTo((PteKind.Present, before[i], true)), $"page {i} back on its source");
        }
        string state = Snapshot(machine, a, p);
        AssertFilled(p, a, Pages);
        p.Store(a, 99);
        Assert.That(p.Mm.EntryAt(a).Pfn, Is.EqualTo(before[0]), "still exclusive: a write reuses the page");
        machine.CheckInvariants();
        ExitAllAndCheckDevices(machine, dev);
        return new Outcome(counts, state);
    }

    // ------------------------------------------------------------------ support

    private sealed record Outcome(long[] RangeRestored, string State);

    /// <summary>Records the entries each range walk restored in <paramref name="p"/>'s mm; with <paramref name="generalOnly"/> the rmap path is forced.</summary>
    private static List<long> Watch(Process p, bool generalOnly)
    {
        var counts = new List<long>();
        var mm = p.Mm;
        MigrationEngine.t_generalPathOnly = generalOnly;
        TestHooks.Callback = (point, subject, value) =>
        {
            if (point == TestHookPoint.MigrationRangeRestored && ReferenceEquals(subject, mm))
                lock (counts) counts.Add((long)value);
        };
        return counts;
    }

    private static MigrateVma NewArgs(Process p, ulong a) => new()
    {
        Vma = p.Mm.FindVma(a),
        Start = a,
        End = a + (Pages * P),
        Src = new ulong[Pages],
        Dst = new ulong[Pages],
        PgmapOwner = new object(),
        Flags = MigrateSelect.System,
    };

    private static void Destinations(TestDevice dev, MigrateVma args)
    {
        for (int i = 0; i < Pages; i++)
        {
            ulong s = args.Src[i];
            if ((s & MigratePfn.Migrate) == 0 || !MigratePfn.IsValid(s)) continue;
            Assert.That(dev.TryAllocate(0, out ulong d), Is.True);
            dev.Copy.Copy([new Hmm.Runtime.Devices.PageCopy(s >> MigratePfn.Shift, d)]);
            args.Dst[i] = MigratePfn.FromPfn(d) | (s & MigratePfn.Write);
        }
    }

    /// <summary>Every entry word of the range in each process, with its page's mapcount and refcount, and each mm's RSS.</summary>
    private static string Snapshot(Machine machine, ulong a, params Process[] processes)
    {
        var parts = new List<string>();
        foreach (var p in processes)
        {
            parts.Add($"{p.Name} rss {p.Mm.RssAnon}/{p.Mm.RssFile}");
            for (int i = 0; i < Pages; i++)
            {
                var e = p.Mm.EntryAt(a + ((ulong)i * P));
                ulong head = machine.Frames.FolioHead(e.Pfn);
                parts.Add($"{i}:{e.Kind}:{e.Raw:x}:map {machine.Frames.MapCount(e.Pfn)}:ref {machine.Frames.RefCount(head)}:flags {machine.Frames.Flags(e.Pfn)}");
            }
        }
        return string.Join(";", parts);
    }
}
