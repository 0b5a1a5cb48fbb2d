using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;

namespace Hmm.Samples.Nouveau;

/// <summary>
/// The GPU programs of drivers.md F.1 and F.3 as <see cref="KernelDescription"/>s, so hmmsim and
/// tests name a workload instead of spelling its ops. The CPU side of each scenario (fills,
/// touches, munmap, bind) is the caller's; these are only the kernels.
/// </summary>
public static class GpuWorkloads
{
    /// <summary>F.1.1 / F.1.2: one thread per page reading its first word (one fault per page on first touch).</summary>
    public static KernelDescription ReadEveryPage(ulong buffer, ulong bytes) => new()
    {
        Base = buffer, Bytes = bytes, Threads = (int)(bytes >> Page.Shift), Pattern = KernelPattern.Strided, StrideBytes = Page.Size,
    };

    /// <summary>One thread per page writing <paramref name="value"/> to its first word.</summary>
    public static KernelDescription WriteEveryPage(ulong buffer, ulong bytes, ulong value) => ReadEveryPage(buffer, bytes) with
    {
        Access = DeviceAccess.Write, Value = value,
    };

    /// <summary>A streaming kernel: <paramref name="threads"/> threads, coalesced 8-byte accesses covering the buffer once.</summary>
    public static KernelDescription Stream(ulong buffer, ulong bytes, int threads, DeviceAccess access = DeviceAccess.Read, ulong value = 1) => new()
    {
        Base = buffer, Bytes = bytes, Threads = threads, OpsPerThread = (int)Math.Max(1, bytes / 8 / (ulong)threads),
        Pattern = KernelPattern.Streaming, Access = access, Value = value,
    };

    /// <summary>F.1.6: <paramref name="threads"/> threads atomically adding 1 to <paramref name="counters"/> 8-byte counters (thread t → counter t mod n).</summary>
    public static KernelDescription AtomicCounters(ulong buffer, int counters, int threads) => new()
    {
        Base = buffer, Bytes = (ulong)counters * 8, Threads = threads, Pattern = KernelPattern.Streaming, Access = DeviceAccess.Atomic, Value = 1,
    };

    /// <summary>F.1.7 / F.3.3: <paramref name="threads"/> threads (10,000) on <paramref name="pages"/> pages (16): thread t reads page t mod pages.</summary>
    public static KernelDescription FaultStorm(ulong buffer, int pages = 16, int threads = 10_000) => new()
    {
        Base = buffer, Bytes = (ulong)pages * Page.Size, Threads = threads, Pattern = KernelPattern.Strided, StrideBytes = Page.Size,
    };

    /// <summary>F.3.2: one thread per touched page reading 1 of every <paramref name="k"/> pages of the 2 MiB block at <paramref name="block"/>.</summary>
    public static KernelDescription PrefetchDensity(ulong block, int k) => new()
    {
        Base = block, Bytes = Page.PmdSize, Threads = Page.PmdPages / k, Pattern = KernelPattern.Strided, StrideBytes = (ulong)k * Page.Size,
    };

    /// <summary>F.3.4: a working set walked sequentially (one write per page, in page order).</summary>
    public static KernelDescription OversubscribedSequential(ulong buffer, ulong bytes, ulong value) => WriteEveryPage(buffer, bytes, value);

    /// <summary>F.3.4: <paramref name="ops"/> random 8-byte writes of <paramref name="value"/> over the working set.</summary>
    public static KernelDescription OversubscribedRandom(ulong buffer, ulong bytes, int ops, ulong value, ulong seed = 7) => new()
    {
        Base = buffer, Bytes = bytes, Threads = ops, Pattern = KernelPattern.Random, Access = DeviceAccess.Write, Value = value, Seed = seed,
    };

    /// <summary>F.3.5: <paramref name="threads"/> threads each reading <paramref name="opsPerThread"/> words streaming over remote memory.</summary>
    public static KernelDescription RemoteReads(ulong buffer, ulong bytes, int threads, int opsPerThread) => new()
    {
        Base = buffer, Bytes = bytes, Threads = threads, OpsPerThread = opsPerThread, Pattern = KernelPattern.Streaming,
    };
}
