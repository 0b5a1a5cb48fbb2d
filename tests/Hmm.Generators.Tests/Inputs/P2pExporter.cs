namespace Samples.P2p;

/// <summary>A device exporting its BAR memory to peers; refuses writable peer mappings.</summary>
[HmmDriver("nic")]
[P2pExporter]
public sealed partial class ExporterDriver
{
    public long Refused { get; private set; }

    [OnP2pExport]
    private Errno Allow(Vma vma, PciFunction importer, ulong start, ulong end, bool write)
    {
        if (!write) return Errno.Ok;
        Refused++;
        return Errno.EACCES;
    }
}
