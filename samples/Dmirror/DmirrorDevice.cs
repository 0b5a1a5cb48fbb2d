using Hmm.Dsl;
using Hmm.Runtime;
using Hmm.Runtime.DeviceMemory;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Mm;

namespace Hmm.Samples.TestHmm;

/// <summary>
/// Simulates <c>struct dmirror_device</c> of lib/test_hmm.c — one <c>/dev/hmm_dmirrorN</c> char
/// device (reference/kernel-hmm.md E): minors 0 and 1 own MEMORY_DEVICE_PRIVATE memory, minors
/// 2 and 3 MEMORY_DEVICE_COHERENT memory. The memory is the generated <see cref="DmirrorMemory"/>:
/// <see cref="ChunkSize"/> chunks created on demand, two free lists (base pages and 2 MiB
/// folios), <see cref="Calloc"/>/<see cref="Cfree"/>. A coherent device's memory is the one SPM
/// region the module parameters name: one chunk at most (a second memremap_pages of the same
/// address fails), so a 2 MiB allocation there falls back to base pages.
/// </summary>
public sealed class DmirrorDevice
{
    /// <summary>DEVMEM_CHUNK_SIZE: 256 MiB per chunk.</summary>
    public const ulong ChunkSize = 256UL << 20;

    /// <summary>DEVMEM_CHUNKS_RESERVE: the chunk array grows by 16.</summary>
    public const int ChunksReserve = 16;

    /// <summary>DMIRROR_NDEVICES.</summary>
    public const int DeviceCount = 4;

    private DmirrorDevice(Machine machine, int minor, ulong chunkBytes)
    {
        ChunkBytes = chunkBytes;
        Machine = machine;
        Minor = minor;
        Kind = minor < 2 ? DevicePageKind.Private : DevicePageKind.Coherent;
        Sim = new SimDevice(machine, $"hmm_dmirror{minor}");
        Mapping = new DeviceFileMapping(machine);
        Memory.ConfigureDeviceMemory(Kind, (long)chunkBytes, Kind == DevicePageKind.Private ? DmirrorMemory.DeviceMaxChunks : 1);
    }

    /// <summary>dmirror_device_init: device <paramref name="minor"/> (0..3) on <paramref name="machine"/>, with its first chunk as free base pages.</summary>
    public static DmirrorDevice Create(Machine machine, int minor) => Create(machine, minor, ChunkSize);

    /// <summary>
    /// Like <see cref="Create(Machine, int)"/> with chunks of <paramref name="chunkBytes"/> (a
    /// multiple of 2 MiB) instead of <see cref="ChunkSize"/>: race scenarios build a device per
    /// schedule, and 65,536 struct pages per chunk would dominate their cost.
    /// </summary>
    public static DmirrorDevice Create(Machine machine, int minor, ulong chunkBytes)
    {
        ArgumentOutOfRangeException.ThrowIfZero(chunkBytes);
        if (chunkBytes % (2UL << 20) != 0) throw new ArgumentOutOfRangeException(nameof(chunkBytes), "a multiple of 2 MiB");
        ArgumentNullException.ThrowIfNull(machine);
        ArgumentOutOfRangeException.ThrowIfNegative(minor);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(minor, DeviceCount);
        var device = new DmirrorDevice(machine, minor, chunkBytes);
        device.Memory.AttachDeviceMemory(device.Sim);   // dmirror_allocate_chunk(mdevice, NULL): InitialChunks = 1
        return device;
    }

    /// <summary>Bytes of device memory per chunk (<see cref="ChunkSize"/> unless created smaller).</summary>
    public ulong ChunkBytes { get; }

    /// <summary>The machine the device is plugged into.</summary>
    public Machine Machine { get; }

    /// <summary>The char device minor (0..3).</summary>
    public int Minor { get; }

    /// <summary>mdevice->zone_device_type.</summary>
    public DevicePageKind Kind { get; }

    /// <summary>The device's DMA engine (the only host-side path to private device memory).</summary>
    public CopyEngine Copy => Sim.Copy;

    /// <summary>mdevice->calloc: device pages handed out.</summary>
    public long Calloc => Memory.DevicePagesAllocated;

    /// <summary>mdevice->cfree: device pages given back (not counted while a chunk is being removed).</summary>
    public long Cfree => Memory.DevicePagesFreed;

    /// <summary>mdevice->devmem_count: chunks currently plugged.</summary>
    public int ChunkCount => Memory.DeviceChunkCount;

    /// <summary>mdevice->devmem_capacity: the chunk array grows by <see cref="ChunksReserve"/>; removal resets it.</summary>
    public int ChunkCapacity => (ChunkCount + ChunksReserve - 1) / ChunksReserve * ChunksReserve;

    /// <summary>Free base pages and free 2 MiB folios on the lists.</summary>
    public (int Pages, int Folios) FreeListLengths => Memory.DeviceFreeListLengths;

    internal DmirrorMemory Memory { get; } = new();

    /// <summary>The simulated device the memory and every open file's device page table hang off.</summary>
    internal SimDevice Sim { get; }

    internal DeviceFileMapping Mapping { get; }

    /// <summary>
    /// dmirror_fops_open: a mirror of <paramref name="process"/>'s address space (an interval
    /// notifier over the whole address space). May sleep; call without the mmap lock.
    /// </summary>
    public Dmirror Open(Process process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return new Dmirror(this, process);
    }

    /// <summary>
    /// dmirror_fops_mmap: maps <paramref name="length"/> bytes of the device file into
    /// <paramref name="process"/> (shared, read/write): zeroed kernel pages vm_insert_page'd into a
    /// mixed map. Those pages have no anonymous mapping, so migrate_vma never collects them.
    /// Throws <see cref="ErrnoException"/> as mmap(2) fails.
    /// </summary>
    public ulong MmapDeviceFile(Process process, ulong length)
        => MmapDeviceFile(process, length, Prot.Read | Prot.Write, MapFlags.Shared);

    /// <summary>
    /// dmirror_fops_mmap with the caller's mmap(2) <paramref name="prot"/> and
    /// <paramref name="flags"/> (MAP_SHARED or MAP_PRIVATE, optionally MAP_FIXED). In a
    /// MAP_PRIVATE mapping the inserted pages are mapped copy-on-write (vm_page_prot is PAGE_COPY):
    /// a device snapshot sees them read-only and a CPU write gets a private anonymous copy, as
    /// hmm-tests' "mixedmap" expects. Throws <see cref="ErrnoException"/> as mmap(2) fails.
    /// </summary>
    public ulong MmapDeviceFile(Process process, ulong length, Prot prot, MapFlags flags, ulong addr = 0)
    {
        ArgumentNullException.ThrowIfNull(process);
        return process.MmapDevice(length, prot, flags, Mapping, addr);
    }

    /// <summary>dmirror_device_remove_chunks (RELEASE and close): every page in use evicted with its data, every chunk unplugged.</summary>
    internal void RemoveChunks() => _ = Memory.RemoveDeviceMemory();

    /// <inheritdoc/>
    public override string ToString() => $"hmm_dmirror{Minor} ({Kind})";
}

/// <summary>
/// The generated memory of one <see cref="DmirrorDevice"/>, shared by its open files: one chunk
/// at init, test_hmm's free lists (a chunk added for a 2 MiB folio holds folios; a base page never
/// splits one), calloc/cfree, kind and chunk size and limit chosen per minor, evicting removal.
/// </summary>
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 256L << 20, MaxChunks = 64, InitialChunks = 1, SplitFolios = false, PageCounters = true, Configurable = true)]
internal sealed partial class DmirrorMemory
{
}
