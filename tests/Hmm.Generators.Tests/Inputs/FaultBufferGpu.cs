namespace Samples.Gpu;

/// <summary>A GPU with a replayable fault buffer: atomics take exclusive entries, writes migrate here, reads map in place.</summary>
[HmmDriver("gpu", UpdateLock = nameof(_svmm))]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 8)]
[FaultBuffer(Entries = 1024, BatchSize = 64, Replay = ReplayPolicy.Batch)]
public sealed partial class GpuDriver
{
    private readonly KernelMutex _svmm = new("gpu.svmm");

    public bool MigrateOnWrite { get; set; }

    [FaultPolicy]
    private FaultAction Decide(in FaultRange fault)
        => fault.Atomic ? FaultAction.Exclusive
         : fault.Write && MigrateOnWrite ? FaultAction.MigrateToDevice
         : FaultAction.MapInPlace;

    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);
}
