using Hmm.Runtime;
using Hmm.Runtime.Mm;
using Hmm.Runtime.Scheduling;

namespace Hmm.Samples.TestHmm.Exploration;

/// <summary>
/// The small world every race scenario starts from: a machine, a dmirror device (0: device-private,
/// 2: coherent device memory), one process
/// with <see cref="Pages"/> written pages, and the reference model of their contents (the value
/// of the last write to each page). Registers the common oracles: invariants and no leaked pages.
/// </summary>
public sealed class ScenarioWorld
{
    /// <summary>Pages in the buffer.</summary>
    public const int Pages = 4;

    private readonly long _baseline;

    /// <summary>Builds the world for one schedule of <paramref name="ctx"/> on dmirror device <paramref name="minor"/>.</summary>
    public ScenarioWorld(ExploreContext ctx, int minor = 0)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        Machine = new Machine(new MachineOptions { SystemMemory = 8L << 20, TransparentHugePages = false });
        ctx.Cleanup(Machine.Dispose);
        Device = DmirrorDevice.Create(Machine, minor, chunkBytes: 2UL << 20);
        _baseline = Machine.UsedPages;
        Process = Machine.CreateProcess("app");
        Buffer = Process.Mmap(Pages * 4096, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        for (int i = 0; i < Pages; i++)
        {
            Model[i] = 100 + i;
            Process.Store(Address(i), Model[i]);
        }

        Mirror = Device.Open(Process);
    }

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>The dmirror device (minor 0: device-private memory, 2: coherent).</summary>
    public DmirrorDevice Device { get; }

    /// <summary>The process.</summary>
    public Process Process { get; }

    /// <summary>Its mirror on the device.</summary>
    public Dmirror Mirror { get; }

    /// <summary>Start of the buffer.</summary>
    public ulong Buffer { get; }

    /// <summary>The reference model: the last value written to the first int of each page.</summary>
    public int[] Model { get; } = new int[Pages];

    /// <summary>Whether this schedule runs an OOM reaper: the memory may vanish, contents are not checked.</summary>
    public bool Oom { get; set; }

    /// <summary>Address of page <paramref name="page"/>.</summary>
    public ulong Address(int page) => Buffer + ((ulong)page * 4096);

    /// <summary>
    /// Final oracles, run after every thread finished: each live page reads its last write,
    /// the device mirror reads the same, invariants hold, and tearing everything down gives
    /// every page back.
    /// </summary>
    public void CheckAtEnd(ExploreContext ctx, bool checkContents = true)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ctx.AtEnd(() =>
        {
            if (checkContents)
            {
                for (int i = 0; i < Pages; i++)
                {
                    int v = Process.Load<int>(Address(i));
                    ExploreContext.Check(v == Model[i], $"page {i} reads {v}, the last write was {Model[i]}");
                }
            }

            Machine.CheckInvariants();
            Mirror.Release();
            Mirror.Close();
            Process.Exit();
            Machine.CheckInvariants();
            ExploreContext.Check(Machine.UsedPages == _baseline, $"{Machine.UsedPages - _baseline} pages leaked");
        });
    }

    /// <summary>Whether <paramref name="e"/> is an outcome a racing CPU thread may see (the area was unmapped, the process reaped).</summary>
    public static bool IsExpectedCpuFailure(Exception e) => e is SegmentationFault or BusError or ErrnoException;
}
