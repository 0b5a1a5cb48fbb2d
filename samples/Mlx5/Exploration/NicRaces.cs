using Hmm.Runtime;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Scheduling;

namespace Hmm.Samples.Mlx5.Exploration;

/// <summary>
/// The NIC race scenarios (drivers.md B.5, B.6, B.8, B.9 as interleavings): the mlx5-like ODP NIC's
/// responder page faults racing munmap, deregistration, and implicit-child reaping. Faults are
/// serviced inline on the stalled QP's logical thread and the workqueue is a logical thread too, so
/// the controlled scheduler owns every interleaving. The in-line faults (allocation failure, seq
/// EBUSY) come from the runtime; a failed RDMA operation leaves each page old or new, never torn.
/// Each body takes the NIC options so a test can plant a bug.
/// </summary>
public static class NicRaces
{
    /// <summary>Every NIC scenario, in the order <c>hmmsim explore --list</c> prints them.</summary>
    public static IReadOnlyList<NicRace> All { get; } =
    [
        new("nic-fault-munmap", "an ODP NIC's RDMA WRITE page faults race munmap of half the target (invalidation of the same pages)", ctx => FaultVsMunmap(ctx)),
        new("nic-dereg-fault", "ODP MR deregistration races an in-flight RDMA WRITE page fault on the same MR", ctx => DeregVsFault(ctx)),
        new("nic-implicit-reap-fault", "implicit ODP: reaping an emptied 1 GiB child races a new fault in the same slot", ctx => ImplicitReapVsFault(ctx)),
    ];

    /// <summary>The scenario named <paramref name="name"/>, or null.</summary>
    public static NicRace? Find(string name) => All.FirstOrDefault(s => s.Name == name);

    /// <summary>
    /// The client RDMA WRITEs all four pages of the server's ODP MR (responder faults) and reads the
    /// lower half back, while the server unmaps the upper half. The write may fail with EFAULT; the
    /// NIC must never keep a translation of an unmapped page.
    /// </summary>
    public static void FaultVsMunmap(ExploreContext ctx, Mlx5Options? nic = null)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var w = new NicWorld(ctx, nic);
        var mr = w.RegisterServer();
        ctx.Spawn("rdma", () =>
        {
            var e = w.Write(0, NicWorld.Pages, mr.Key);
            w.WriteOutcome(e, 0, NicWorld.Pages);
            w.ReadAndCheck(0, NicWorld.Pages / 2, mr.Key, "after the write");
        });
        ctx.Spawn("munmap", () =>
        {
            w.UnmappedFrom = NicWorld.Pages / 2;
            w.Testbed.Server.Munmap(w.Address(NicWorld.Pages / 2), NicWorld.Bytes / 2);
            w.CheckTranslations("right after munmap");
        });
        w.CheckAtEnd(ctx);
    }

    /// <summary>
    /// The client RDMA WRITEs the server's MR while the server deregisters it: the write completes
    /// (the fault held the mkey reference and dereg waited for it) or fails with a remote access
    /// error; dereg succeeds and leaves no mapped entry, whichever came first.
    /// </summary>
    public static void DeregVsFault(ExploreContext ctx, Mlx5Options? nic = null)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var w = new NicWorld(ctx, nic);
        var mr = w.RegisterServer();
        ctx.Spawn("rdma", () =>
        {
            var e = w.Write(0, NicWorld.Pages, mr.Key);
            ExploreContext.Check(e is Errno.Ok or Errno.EACCES or Errno.EFAULT or Errno.ENOMEM, $"RDMA WRITE racing dereg failed with {e}");
            w.WriteOutcome(e, 0, NicWorld.Pages);
        });
        ctx.Spawn("dereg", () =>
        {
            var e = w.Testbed.NicB.DeregMr(mr);
            ExploreContext.Check(e == Errno.Ok, $"dereg returned {e}");
            w.Testbed.Forget(mr);
            ExploreContext.Check(mr.UseCount == 0, $"dereg returned with {mr.UseCount} users of the mkey");
            ExploreContext.Check(mr.Umem!.MappedPages == 0, $"a deregistered MR still maps {mr.Umem.MappedPages} pages");
        });
        ctx.AtEnd(() =>
        {
            ExploreContext.Check(mr.Umem!.MappedPages == 0, $"after dereg a fault installed {mr.Umem.MappedPages} entries into the dead MR");
            ExploreContext.Check(w.Write(0, 1, mr.Key) == Errno.EACCES, "an RDMA WRITE to the deregistered rkey did not fail with a remote access error");
        });
        w.CheckAtEnd(ctx);
    }

    /// <summary>
    /// Implicit ODP: the first RDMA WRITE created the 1 GiB child of the buffer's slot. The server
    /// unmaps pages 0–1 and, if that left the child empty, the workqueue (a logical thread spawned
    /// then) reaps it, while the client writes pages 2–3 of the same slot — a fault that must find
    /// the live child or create a new one, never use one being destroyed. <paramref name="observe"/>
    /// sees the implicit MR after the oracles (tests count which outcome a schedule reached).
    /// </summary>
    public static void ImplicitReapVsFault(ExploreContext ctx, Mlx5Options? nic = null, Action<MemoryRegion>? observe = null)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var w = new NicWorld(ctx, nic);
        var mr = w.RegisterServer(implicitOdp: true);
        // Setup (before any logical thread): only pages 0–1 are in the child.
        var first = w.Write(0, NicWorld.Pages / 2, mr.Key);
        if (first != Errno.Ok) throw new InvalidOperationException($"setup RDMA WRITE failed ({first})");
        w.WriteOutcome(first, 0, NicWorld.Pages / 2);
        ctx.Spawn("munmap", () =>
        {
            w.Testbed.Server.Munmap(w.Address(0), NicWorld.Bytes / 2);
            ctx.Spawn("workqueue", () => w.Testbed.NicB.RunQueuedWork());
        });
        ctx.Spawn("rdma", () =>
        {
            var e = w.Write(NicWorld.Pages / 2, NicWorld.Pages, mr.Key);
            w.WriteOutcome(e, NicWorld.Pages / 2, NicWorld.Pages);
            w.ReadAndCheck(NicWorld.Pages / 2, NicWorld.Pages, mr.Key, "after the write");
        });
        ctx.AtEnd(() =>
        {
            w.Testbed.NicB.RunQueuedWork();
            // Pages 2–3 are still mapped by the CPU: a NIC read must reach them through a live child.
            ExploreContext.Check(w.ReadAndCheck(NicWorld.Pages / 2, NicWorld.Pages, mr.Key, "at the end") == Errno.Ok, "the NIC cannot read pages 2-3 after the reap");
            ExploreContext.Check(mr.Implicit!.HasChild(w.Address(NicWorld.Pages / 2)), "no child covers the slot the NIC just read");
            observe?.Invoke(mr);
        });
        // Pages 0–1 were unmapped: only 2–3 are checked (UnmappedFrom counts from the top, so shift the model).
        w.CheckAtEndFrom(ctx, NicWorld.Pages / 2);
    }
}
