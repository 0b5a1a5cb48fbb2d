namespace Samples.Throttled;

/// <summary>
/// A device-private driver whose CPU faults may be held back before migrate_to_ram collects
/// anything ([BeforeMigrateToRam], UVM's CPU-side thrashing nap): the default migrate_to_ram
/// runs after the hook says go on.
/// </summary>
[HmmDriver("throttled")]
[DeviceMemory(DevicePageKind.Private, ChunkBytes = 2L << 20, MaxChunks = 2)]
public sealed partial class ThrottledDriver
{
    private long _napUntilNs;

    public void NapUntil(long ns) => _napUntilNs = ns;

    [CopyPages]
    private void Copy(ReadOnlySpan<PageCopy> copies) => Device.Copy.Copy(copies);

    [BeforeMigrateToRam]
    private bool Throttle(in VmFault vmf)
    {
        if (Device.Clock.Now >= _napUntilNs) return true;
        Device.Clock.AdvanceTo(_napUntilNs);
        return false;
    }
}
