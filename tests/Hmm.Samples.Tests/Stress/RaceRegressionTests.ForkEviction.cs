using Stopwatch = System.Diagnostics.Stopwatch;
using Hmm.Runtime;
using Hmm.Runtime.Interleaving;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;
using NUnit.Framework;

namespace Hmm.Samples.Tests.Stress;

/// <summary>
/// fork copying page tables while an eviction walks the lineage (found by the explorer scenario
/// fork-eviction, random seed 30100: the child kept a migration entry whose device page was
/// then unplugged, PAGE-R02). rmap_walk_anon visits the VMAs in link order and looks each one's
/// entries up under that mm's page-table lock when it reaches it; fork links the child's VMA
/// after the parent's and copies holding the parent's page-table lock. So whichever of the
/// parent's entry and fork's copy comes first, the walk finds the entry in the child: it
/// passed the parent before the copy (the copy is then in the child when the walk gets there),
/// or the copy saw what the walk left in the parent. The walks used to probe every VMA of the
/// lineage first and change the hits afterwards: a child probed while still empty was never
/// visited again, whatever fork copied into it meanwhile.
/// </summary>
public partial class RaceRegressionTests
{
    /// <summary>
    /// remove_migration_ptes: fork has linked the child's (empty) VMA; the eviction's restore walk
    /// reaches the parent's migration entry; fork then copies that entry into the child (and
    /// write-protects the parent's). The walk must restore the child's copy too: before, the child
    /// kept a migration entry nobody would remove, and faulted on a device page that was gone.
    /// </summary>
    [Test]
    public void ForkCopyingAMigrationEntryAfterTheRestoreWalkLookedAtTheChild_IsRestoredToo([Values(0, 2)] int minor)
    {
        var dev = DmirrorDevice.Create(Machine, minor);
        using var m = dev.Open(P);
        ulong a = Filled(1, 28);
        P.Store(a, 0xA8UL);
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        var (child, copiedWhileTheWalkWaited) = ForkRacingAWalk(TestHookPoint.RemoveMigrationPtesVisit, a, () => m.Release(), PteKind.Migration);

        Assert.That(copiedWhileTheWalkWaited, Is.True, "fork did not copy the parent's migration entry while the restore walk was at the parent");
        Assert.That(child.Mm.EntryAt(a).Kind, Is.EqualTo(PteKind.Present), "remove_migration_ptes missed the entry fork copied into the child");
        AssertEvictedAndShared(a, child, 0xA8UL);
        child.Exit();
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// try_to_migrate: fork has linked the child's (empty) VMA; the eviction's unmap walk reaches
    /// the parent's device mapping; fork then copies that mapping into the child. The walk must
    /// convert the child's copy too, so the page is evicted from both: before, the child kept
    /// its mapping (and reference), the page could not be migrated and stayed on the device.
    /// </summary>
    [Test]
    public void ForkCopyingADeviceMappingAfterTheUnmapWalkLookedAtTheChild_IsUnmappedToo([Values(0, 2)] int minor)
    {
        var dev = DmirrorDevice.Create(Machine, minor);
        using var m = dev.Open(P);
        ulong a = Filled(1, 29);
        P.Store(a, 0xA9UL);
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        var mapped = P.Mm.EntryAt(a).Kind;
        var (child, copiedWhileTheWalkWaited) = ForkRacingAWalk(TestHookPoint.TryToMigrateHit, a, () => m.Release(), mapped);

        Assert.That(copiedWhileTheWalkWaited, Is.True, "fork did not copy the parent's device mapping while the unmap walk was at the parent");
        AssertEvictedAndShared(a, child, 0xA9UL);
        child.Exit();
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// Negative case: the same race with fork copying <i>before</i> the eviction starts — the
    /// walks find both mappings from the start — evicts the page from both mms too.
    /// </summary>
    [Test]
    public void ForkCompletedBeforeTheEviction_BothMmsAreEvicted([Values(0, 2)] int minor)
    {
        var dev = DmirrorDevice.Create(Machine, minor);
        using var m = dev.Open(P);
        ulong a = Filled(1, 30);
        P.Store(a, 0xAAUL);
        Assert.That(m.MigrateToDevice(a, 1, Mirror(1), out _), Is.EqualTo(Errno.Ok));
        var child = P.Fork();
        Assert.That(m.Release(), Is.EqualTo(Errno.Ok));

        AssertEvictedAndShared(a, child, 0xAAUL);
        child.Exit();
        m.Close();
        Machine.CheckInvariants();
    }

    /// <summary>
    /// Forks <see cref="DmirrorTestBase.P"/> on another thread, stopping it once the child's VMA is
    /// linked (<see cref="TestHookPoint.ForkVmaLinked"/>), then runs <paramref name="evict"/> here.
    /// When the eviction's walk reaches the parent's entry at <paramref name="a"/>
    /// (<paramref name="walkPoint"/>, with the child's VMA already in the lineage and still empty),
    /// fork is let go and the walk waits until fork has copied the entry — copy_pte_range
    /// write-protects the parent's <paramref name="kind"/> entry under the PTL it copies under.
    /// Returns the child, and whether the copy happened while the walk waited.
    /// </summary>
    private (Process Child, bool Copied) ForkRacingAWalk(TestHookPoint walkPoint, ulong a, Action evict, PteKind kind)
    {
        ulong vmaStart = VmaOf(a).Start;
        var linked = new ManualResetEventSlim();
        var walkAtParent = new ManualResetEventSlim();
        bool copied = false, forkLetGo = false;
        Process? child = null;
        TestHooks.Callback = (point, subject, address) =>
        {
            if (point == TestHookPoint.ForkVmaLinked && ReferenceEquals(subject, P.Mm) && address == vmaStart)
            {
                linked.Set();
                forkLetGo = walkAtParent.Wait(Watchdog);
            }
            else if (point == walkPoint && ReferenceEquals(subject, P.Mm) && address == a && linked.IsSet && !walkAtParent.IsSet)
            {
                var before = P.Mm.EntryAt(a);
                Assert.That(before.Kind, Is.EqualTo(kind), "the walk stopped at the parent's entry");
                Assert.That(before.IsWritable, Is.True, "the parent's entry is writable before fork copies it");
                walkAtParent.Set();
                var clock = Stopwatch.StartNew();
                var spin = new SpinWait();
                while (P.Mm.EntryAt(a).IsWritable && clock.Elapsed < Watchdog) spin.SpinOnce();
                copied = !P.Mm.EntryAt(a).IsWritable;
            }
        };
        var forker = new Thread(() => child = P.Fork());
        forker.Start();
        Assert.That(linked.Wait(Watchdog), Is.True, "fork did not reach ForkVmaLinked");
        evict();
        Assert.That(forker.Join(Watchdog), Is.True, "fork did not finish");
        TestHooks.Callback = null;
        Assert.That(forkLetGo, Is.True, "the eviction's walk never reached the parent's entry while fork waited");
        linked.Dispose();
        walkAtParent.Dispose();
        return (child!, copied);
    }

    /// <summary>The page at <paramref name="a"/> is back in system memory, mapped by the parent and the child alike, with its data; a COW store of the child stays its own.</summary>
    private void AssertEvictedAndShared(ulong a, Process child, ulong value)
    {
        Pte parent = P.Mm.EntryAt(a), copy = child.Mm.EntryAt(a);
        Assert.That(parent.Kind, Is.EqualTo(PteKind.Present), "the parent's page was not evicted");
        Assert.That(Machine.Frames.Flags(parent.Pfn) & PageFlags.Device, Is.EqualTo((PageFlags)0), "the parent still maps a device page");
        Assert.That(copy.Kind, Is.EqualTo(PteKind.Present), "the child's page was not evicted");
        Assert.That(copy.Pfn, Is.EqualTo(parent.Pfn), "parent and child share the evicted page until one writes");
        Assert.That(child.Load<ulong>(a), Is.EqualTo(value));
        child.Store(a, value + 1);   // copy-on-write: the parent keeps its value
        Assert.That(P.Load<ulong>(a), Is.EqualTo(value));
        Assert.That(child.Load<ulong>(a), Is.EqualTo(value + 1));
    }
}
