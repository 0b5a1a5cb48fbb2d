namespace Samples.P2p;

/// <summary>A device mapping a peer's exported memory for DMA.</summary>
[HmmDriver("accel")]
[P2pImporter]
public sealed partial class ImporterDriver
{
    public int Imports { get; private set; }

    [OnP2pImport]
    private Errno Program(P2pVmaImport import)
    {
        Imports++;
        return Errno.Ok;
    }
}
