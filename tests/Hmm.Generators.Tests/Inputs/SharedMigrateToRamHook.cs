namespace Samples.SharedThrottled;

/// <summary>Device memory shared by the open files of one device.</summary>
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 2)]
public sealed partial class SharedDevice
{
}

/// <summary>
/// One open file: the shared memory hands it migrate_to_ram for the pages it migrated, and its
/// [BeforeMigrateToRam] opens that hand-over too.
/// </summary>
[HmmDriver("shared-throttled", Memory = nameof(Memory))]
public sealed partial class SharedThrottledFile
{
    public SharedThrottledFile(SharedDevice memory) => Memory = memory;

    public SharedDevice Memory { get; }

    public int Held { get; private set; }

    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);

    [BeforeMigrateToRam]
    private bool Hold(in VmFault vmf)
    {
        Held++;
        return true;
    }
}
