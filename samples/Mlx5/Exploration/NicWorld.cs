using Hmm.Runtime;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Scheduling;

namespace Hmm.Samples.Mlx5.Exploration;

/// <summary>A named NIC race scenario for <see cref="Explorer"/> (the NIC part of the exploration catalogue).</summary>
/// <param name="Name">The name <c>hmmsim explore NAME</c> takes.</param>
/// <param name="Description">One line on what races.</param>
/// <param name="Body">The exploration body (builds a fresh world per schedule).</param>
public sealed record NicRace(string Name, string Description, Action<ExploreContext> Body);

/// <summary>
/// The small world every NIC race starts from: the F.2 testbed (client NIC A → server NIC B over
/// the loopback wire) with faults serviced inline on the stalled QP's thread and no workqueue
/// threads (so every thread is a logical thread of the controlled scheduler), every DMA translation
/// checked against the CPU page table, a server buffer of <see cref="Pages"/> pages with known
/// contents, and a client source buffer holding the data the race writes. Oracles: no stale NIC
/// translation (neither seen by a DMA nor left in any MTT at the end), contents as the model
/// says, <c>CheckInvariants</c> after deregistration and exit.
/// </summary>
public sealed class NicWorld
{
    // The model: per page, whether the server holds the old data, the new data, or either (a write that failed part-way).
    private readonly Written[] _written = new Written[Pages];

    private enum Written { Old, New, Either }

    /// <summary>Pages in the server's buffer.</summary>
    public const int Pages = 4;

    /// <summary>Bytes in the server's buffer.</summary>
    public const int Bytes = Pages * Page.Size;

    /// <summary>Builds the world for one schedule; <paramref name="nic"/> overrides the NICs' options (tests plant bugs there).</summary>
    public NicWorld(ExploreContext ctx, Mlx5Options? nic = null)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var options = nic ?? new Mlx5Options();
        Testbed = new Mlx5Testbed(new Mlx5TestbedOptions
        {
            SystemMemory = 16L << 20,
            Nic = options with { InlineFaults = true, Workers = 0, CheckTranslations = true },
        });
        ctx.Cleanup(Testbed.Dispose);
        Target = Mlx5Testbed.Map(Testbed.Server, Pages);
        Source = Mlx5Testbed.Map(Testbed.Client, 2 * Pages);
        Old = Mlx5Testbed.Pattern(Bytes, 1);
        Data = Mlx5Testbed.Pattern(Bytes, 2);
        Testbed.Client.Write(Source, Data);
        ClientMr = Testbed.Register(Testbed.NicA, Testbed.PdA, Source, 2 * Pages);
    }

    /// <summary>
    /// Registers the server's MR (explicit over the buffer, or the implicit one) and only then lets the
    /// CPU write the old contents: reg_mr's snapshot finds nothing mapped, so the race's NIC accesses
    /// really fault (a snapshot taken after the CPU wrote would pre-fill the MTT and hide the fault).
    /// </summary>
    public MemoryRegion RegisterServer(bool implicitOdp = false)
    {
        var mr = implicitOdp
            ? Testbed.RegisterImplicit(Testbed.NicB, Testbed.PdB)
            : Testbed.Register(Testbed.NicB, Testbed.PdB, Target, Pages);
        ServerMrs.Add(mr);
        Testbed.Server.Write(Target, Old);
        return mr;
    }

    /// <summary>The testbed.</summary>
    public Mlx5Testbed Testbed { get; }

    /// <summary>The server's buffer (the RDMA target).</summary>
    public ulong Target { get; }

    /// <summary>The client's buffer: <see cref="Pages"/> pages of <see cref="Data"/>, then <see cref="Pages"/> pages to read back into.</summary>
    public ulong Source { get; }

    /// <summary>Where an RDMA READ lands in the client.</summary>
    public ulong ReadBack => Source + Bytes;

    /// <summary>The server buffer's initial contents.</summary>
    public byte[] Old { get; }

    /// <summary>What the race writes.</summary>
    public byte[] Data { get; }

    /// <summary>The client's MR over <see cref="Source"/>.</summary>
    public MemoryRegion ClientMr { get; }

    /// <summary>Every server-side MR whose MTT the end oracle checks.</summary>
    public List<MemoryRegion> ServerMrs { get; } = [];

    /// <summary>Pages [<see cref="UnmappedFrom"/>, <see cref="Pages"/>) were unmapped by the scenario (contents not checked).</summary>
    public int UnmappedFrom { get; set; } = Pages;

    /// <summary>Page <paramref name="page"/> of the server's buffer.</summary>
    public ulong Address(int page) => Target + ((ulong)page * Page.Size);

    /// <summary>Sets the model after an RDMA WRITE of pages [from, to) of <see cref="Data"/> returned <paramref name="result"/>: all new when Ok, each old or new otherwise.</summary>
    public void WriteOutcome(Errno result, int from, int to)
    {
        for (int p = from; p < to; p++) _written[p] = result == Errno.Ok ? Written.New : Written.Either;
    }

    /// <summary>RDMA WRITE of pages [from, to) of the client's data to the same pages of the server under <paramref name="rkey"/>.</summary>
    public Errno Write(int from, int to, uint rkey)
        => Testbed.QpA.RdmaWrite(new Sge(Source + ((ulong)from * Page.Size), (uint)((to - from) * Page.Size), ClientMr.Key), Address(from), rkey);

    /// <summary>RDMA READ of server pages [from, to) into the read-back buffer; checks each page against the model when the read succeeded.</summary>
    public Errno ReadAndCheck(int from, int to, uint rkey, string when)
    {
        var e = Testbed.QpA.RdmaRead(new Sge(ReadBack + ((ulong)from * Page.Size), (uint)((to - from) * Page.Size), ClientMr.Key), Address(from), rkey);
        if (e != Errno.Ok) return e;
        var got = new byte[(to - from) * Page.Size];
        Testbed.Client.Read(ReadBack + ((ulong)from * Page.Size), got);
        for (int p = from; p < to; p++)
            CheckPage(got.AsSpan((p - from) * Page.Size, Page.Size), p, $"{when}: the NIC read of page {p}");
        return e;
    }

    private void CheckPage(ReadOnlySpan<byte> got, int page, string what)
    {
        bool isOld = got.SequenceEqual(Old.AsSpan(page * Page.Size, Page.Size));
        bool isNew = got.SequenceEqual(Data.AsSpan(page * Page.Size, Page.Size));
        bool ok = _written[page] switch { Written.Old => isOld, Written.New => isNew, _ => isOld || isNew };
        ExploreContext.Check(ok, $"{what} holds {(isOld ? "the old data" : isNew ? "the new data" : "neither the old nor the new data")}, the model says {_written[page]}");
    }

    /// <summary>
    /// The no-stale-translation oracle: no DMA used a translation the CPU page table disagreed with,
    /// and no server MTT holds one now.
    /// </summary>
    public void CheckTranslations(string when)
    {
        ExploreContext.Check(ClientMr.Counters.StaleTranslations == 0, $"{when}: the requester NIC used {ClientMr.Counters.StaleTranslations} stale translations");
        foreach (var mr in ServerMrs)
        {
            ExploreContext.Check(mr.Counters.StaleTranslations == 0, $"{when}: {mr} was DMA'd through {mr.Counters.StaleTranslations} stale NIC translations");
            int stale = mr.IsDead ? 0 : mr.Umem?.StaleEntries() ?? mr.Implicit?.StaleEntries() ?? 0;
            ExploreContext.Check(stale == 0, $"{when}: {mr} keeps {stale} stale NIC translations (MTT entries of pages the CPU no longer maps there)");
        }
    }

    /// <summary>
    /// Final oracles, after every thread finished: no stale translation, the server's mapped pages
    /// hold what the model says (read by the CPU), then deregistration, exit and the invariants.
    /// </summary>
    public void CheckAtEnd(ExploreContext ctx) => CheckAtEndFrom(ctx, 0);

    /// <summary><see cref="CheckAtEnd"/> with contents checked only from page <paramref name="firstMapped"/> (the pages below were unmapped).</summary>
    public void CheckAtEndFrom(ExploreContext ctx, int firstMapped)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ctx.AtEnd(() =>
        {
            CheckTranslations("at the end");
            var got = new byte[Page.Size];
            for (int p = firstMapped; p < UnmappedFrom; p++)
            {
                Testbed.Server.Read(Address(p), got);
                CheckPage(got, p, $"page {p} of the server (CPU read)");
            }
            Testbed.Machine.CheckInvariants();
            Testbed.Finish();
        });
    }
}
