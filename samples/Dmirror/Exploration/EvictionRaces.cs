using Hmm.Runtime;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Scheduling;

namespace Hmm.Samples.TestHmm.Exploration;

/// <summary>
/// Address-space changes racing a device-memory eviction (HMM_DMIRROR_RELEASE:
/// dmirror_device_remove_chunks → migrate_device_range, whose try_to_migrate and
/// remove_migration_ptes walk the anon_vma lineage under its rwsem, not under any mmap lock).
/// Every page of the buffer is on the device before the threads start, so the eviction
/// unmaps, copies and restores each of them while fork copies the page tables (copy_page_range
/// may copy a device entry, a migration entry or the restored page) or mremap moves them
/// (move_page_tables under take_rmap_locks). The oracles: the child of fork sees the parent's
/// data and its copy-on-write store stays private; the moved pages keep their data at the new
/// address and the old one is unmapped; no migration entry, locked page or leaked page is left.
/// </summary>
public static class EvictionRaces
{
    private const int Bytes = ScenarioWorld.Pages * 4096;

    /// <summary>The value the parent's CPU thread stores into page 1 while the race runs.</summary>
    private const int ParentStore = 201;

    /// <summary>The value the fork child stores into page 2 (copy-on-write: the parent keeps its own).</summary>
    private const int ChildStore = 777;

    /// <summary>
    /// fork of the process racing the eviction of its device pages, and a CPU store of the parent.
    /// <paramref name="observe"/>, when given, receives the kind of the child's entry for page 0
    /// as fork left it (device, migration or present): which window of the eviction fork hit.
    /// </summary>
    public static void ForkVsEviction(ExploreContext ctx, int minor = 0, Action<PteKind>? observe = null)
    {
        var w = OnDevice(ctx, minor);
        bool oom = DmirrorRaces.SpawnScenarioFaults(ctx, w, removal: false);
        ctx.Spawn("evict", () => w.Mirror.Release());
        ctx.Spawn("fork", () => DmirrorRaces.Tolerate(oom, () =>
        {
            Process child = w.Process.Fork("child");
            try
            {
                observe?.Invoke(child.Mm.EntryAt(w.Address(0)).Kind);
                for (int i = 0; i < ScenarioWorld.Pages; i++)
                {
                    int v = child.Load<int>(w.Address(i));
                    bool expected = i == 1 ? v is 101 or ParentStore : v == 100 + i;
                    ExploreContext.Check(oom || expected, $"the child read {v} from page {i}, the parent had {(i == 1 ? "101 or 201" : (100 + i).ToString(System.Globalization.CultureInfo.InvariantCulture))}");
                }

                child.Store(w.Address(2), ChildStore);
                int c = child.Load<int>(w.Address(2));
                ExploreContext.Check(oom || c == ChildStore, $"the child read {c} right after storing {ChildStore}");
            }
            finally
            {
                child.Exit();
            }
        }));
        ctx.Spawn("cpu", () => DmirrorRaces.Tolerate(oom, () =>
        {
            w.Process.Store(w.Address(1), ParentStore);
            w.Model[1] = ParentStore;
            int v = w.Process.Load<int>(w.Address(1));
            ExploreContext.Check(oom || v == ParentStore, $"the parent read {v} from page 1 right after storing {ParentStore}");
        }));
        w.CheckAtEnd(ctx, checkContents: !oom);
    }

    /// <summary>
    /// mremap (MREMAP_MAYMOVE|MREMAP_FIXED) of the buffer's upper half racing the eviction of its
    /// device pages, and a CPU store and load in the lower half. <paramref name="observe"/>, when
    /// given, receives the kind of the entry mremap left at the new address of page 2.
    /// </summary>
    public static void MremapVsEviction(ExploreContext ctx, int minor = 0, Action<PteKind>? observe = null)
    {
        const int Half = ScenarioWorld.Pages / 2;
        const ulong HalfBytes = Half * 4096UL;
        var w = OnDevice(ctx, minor);
        // The destination: a mapping of its own that MREMAP_FIXED replaces.
        ulong target = w.Process.Mmap(HalfBytes, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        ulong moved = 0;
        bool oom = DmirrorRaces.SpawnScenarioFaults(ctx, w, removal: false);
        ctx.Spawn("evict", () => w.Mirror.Release());
        ctx.Spawn("mremap", () => DmirrorRaces.Tolerate(oom, () =>
        {
            moved = w.Process.Mremap(w.Address(Half), HalfBytes, HalfBytes, MremapFlags.MayMove | MremapFlags.Fixed, target);
            observe?.Invoke(w.Process.Mm.EntryAt(target).Kind);
        }));
        ctx.Spawn("cpu", () => DmirrorRaces.Tolerate(oom, () =>
        {
            w.Process.Store(w.Address(1), ParentStore);
            w.Model[1] = ParentStore;
            int v = w.Process.Load<int>(w.Address(1));
            ExploreContext.Check(oom || v == ParentStore, $"CPU load of page 1 read {v} right after storing {ParentStore}");
        }));
        if (!oom)
        {
            // Registered before CheckAtEnd's teardown: the moved half is read at its new address.
            ctx.AtEnd(() =>
            {
                ExploreContext.Check(moved == target, $"mremap returned 0x{moved:x}, expected 0x{target:x}");
                for (int i = 0; i < ScenarioWorld.Pages; i++)
                {
                    ulong at = i < Half ? w.Address(i) : target + ((ulong)(i - Half) * 4096);
                    int v = w.Process.Load<int>(at);
                    ExploreContext.Check(v == w.Model[i], $"page {i} reads {v} at 0x{at:x}, the last write was {w.Model[i]}");
                    PteKind k = w.Process.Mm.EntryAt(at).Kind;
                    ExploreContext.Check(k == PteKind.Present, $"page {i} is {k} at 0x{at:x} after the eviction, not present");
                }

                for (int i = Half; i < ScenarioWorld.Pages; i++)
                {
                    PteKind k = w.Process.Mm.EntryAt(w.Address(i)).Kind;
                    ExploreContext.Check(k == PteKind.None, $"page {i}'s old address still holds a {k} entry after mremap moved it");
                }
            });
        }

        w.CheckAtEnd(ctx, checkContents: false);
    }

    /// <summary>The scenario world with every page of the buffer migrated to the device.</summary>
    private static ScenarioWorld OnDevice(ExploreContext ctx, int minor)
    {
        var w = new ScenarioWorld(ctx, minor);
        Errno e = w.Mirror.MigrateToDevice(w.Buffer, ScenarioWorld.Pages, new byte[Bytes], out DmirrorCounters counters);
        ExploreContext.Check(e == Errno.Ok && counters.Cpages == ScenarioWorld.Pages,
            $"setup: migrating the buffer to the device gave {e}, {counters.Cpages} pages");
        return w;
    }
}
