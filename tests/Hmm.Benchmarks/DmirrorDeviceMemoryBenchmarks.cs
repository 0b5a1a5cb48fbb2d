using BenchmarkDotNet.Attributes;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Migration;
using Hmm.Runtime.Mm;
using Hmm.Samples.TestHmm;

namespace Hmm.Benchmarks;

/// <summary>
/// The DeviceMemoryRemoval stress's device cycle through Dmirror's public API: HMM_DMIRROR_RELEASE
/// (evict and unplug every chunk) then MIGRATE_TO_DEV of 64 pages (which hot-adds a fresh chunk) and
/// MIGRATE_TO_SYS, with test_hmm's 256 MiB chunks and with 2 MiB ones — where the time of a hot-add
/// + migrate + remove cycle goes compared with the same migration round trip into a chunk that stays.
/// </summary>
/// <remarks>Baseline: <see cref="MigrateRoundTrip"/>, the round trip with the chunk kept plugged.</remarks>
[MemoryDiagnoser]
public class DmirrorDeviceMemoryBenchmarks
{
    private const int Pages = 64;
    private Machine _machine = null!;
    private Process _process = null!;
    private DmirrorDevice _device = null!;
    private Hmm.Samples.TestHmm.Dmirror _mirror = null!;
    private ulong _buf;
    private byte[] _out = null!;

    /// <summary>Chunk size in MiB: test_hmm's 256, or 2.</summary>
    [Params(256, 2)]
    public int ChunkMiB { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _machine = new Machine(new MachineOptions { SystemMemory = 1L << 30, LockValidation = false });
        _process = _machine.CreateProcess("bench");
        _device = DmirrorDevice.Create(_machine, 0, (ulong)ChunkMiB << 20);
        _mirror = _device.Open(_process);
        _buf = _process.Mmap((ulong)Pages * Page.Size, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        _process.Madvise(_buf, (ulong)Pages * Page.Size, Advice.NoHugePage);
        var data = new byte[Pages * Page.Size];
        new Random(7).NextBytes(data);
        _process.Write(_buf, data);
        _out = new byte[Pages * Page.Size];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _mirror.Close();
        _machine.Dispose();
    }

    /// <summary>MIGRATE_TO_DEV + MIGRATE_TO_SYS of 64 pages; the chunk stays plugged.</summary>
    [Benchmark(Baseline = true)]
    public long MigrateRoundTrip()
    {
        _mirror.MigrateToDevice(_buf, Pages, _out, out var c);
        _mirror.MigrateToSystem(_buf, Pages, out var s);
        return c.Cpages + s.Cpages;
    }

    /// <summary>RELEASE, then the round trip: every iteration hot-adds a chunk and unplugs it again.</summary>
    [Benchmark]
    public long HotAddMigrateRemove()
    {
        _mirror.MigrateToDevice(_buf, Pages, _out, out var c);
        _mirror.Release();
        _mirror.MigrateToSystem(_buf, Pages, out var s);
        return c.Cpages + s.Cpages;
    }

    /// <summary>The hot-add and unplug alone: RELEASE then one MIGRATE_TO_DEV of a single page (then back).</summary>
    [Benchmark]
    public long HotAddRemoveOnePage()
    {
        _mirror.Release();
        _mirror.MigrateToDevice(_buf, 1, _out, out var c);
        _mirror.MigrateToSystem(_buf, 1, out var s);
        return c.Cpages + s.Cpages;
    }

    /// <summary>The runtime's part alone: memremap_pages + memunmap_pages of an empty chunk (no driver, no eviction).</summary>
    [Benchmark]
    public long PagemapCreateRemove()
    {
        DevPagemap.Create(_machine, DevicePageKind.Private, (ulong)ChunkMiB << 20, this, NoOps.Instance, out var pgmap);
        pgmap!.Remove();
        return (long)pgmap.PageCount;
    }

    /// <summary>As <see cref="PagemapCreateRemove"/> through the eviction (migrate_device_range of an empty chunk).</summary>
    [Benchmark]
    public long PagemapCreateEvictRemove()
    {
        DevPagemap.Create(_machine, DevicePageKind.Private, (ulong)ChunkMiB << 20, this, NoOps.Instance, out var pgmap);
        MigrateDevice.EvictAndRemove(pgmap!);
        return (long)pgmap!.PageCount;
    }

    private sealed class NoOps : IDevPagemapOps
    {
        public static readonly NoOps Instance = new();

        public void PageFree(DevPagemap pgmap, ulong pfn)
        {
        }

        public VmFaultResult MigrateToRam(in VmFault vmf) => VmFaultResult.SigBus;
    }
}
