namespace Samples.Devmem;

/// <summary>A device-private memory driver: hotplug in 2 MiB chunks, migration both ways, default migrate_to_ram.</summary>
[HmmDriver("devmem", UpdateLock = nameof(_lock))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 4L << 20, MaxChunks = 4)]
public sealed partial class DevmemDriver
{
    private readonly KernelMutex _lock = new("devmem.lock");
    private long _freed;

    public long PagesFreed => System.Threading.Interlocked.Read(ref _freed);

    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);

    [OnPageFree]
    private void Free(ulong pfn) => System.Threading.Interlocked.Increment(ref _freed);
}
