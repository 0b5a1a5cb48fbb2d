namespace Hmm.Generators.Models;

/// <summary>The driver callbacks the DSL knows, one per callback attribute.</summary>
internal enum CallbackKind
{
    /// <summary>[OnInvalidate] void M(in NotifierRange range).</summary>
    OnInvalidate,
    /// <summary>[OnMirrorFault] void (or Errno) M(HmmRange range, ReadOnlySpan&lt;ulong&gt; hmmPfns).</summary>
    OnMirrorFault,
    /// <summary>[CopyPages] void M(ReadOnlySpan&lt;PageCopy&gt; copies).</summary>
    CopyPages,
    /// <summary>[OnPageFree] void M(ulong pfn).</summary>
    OnPageFree,
    /// <summary>[OnMigrateToRam] VmFaultResult M(in VmFault vmf).</summary>
    OnMigrateToRam,
    /// <summary>[FaultPolicy] FaultAction M(in FaultRange fault).</summary>
    FaultPolicy,
    /// <summary>[OnRelease] void M().</summary>
    OnRelease,
    /// <summary>[OnP2pExport] Errno M(Vma vma, PciFunction importer, ulong start, ulong end, bool write).</summary>
    OnP2pExport,
    /// <summary>[OnP2pImport] Errno M(P2pVmaImport import).</summary>
    OnP2pImport,
    /// <summary>[OnMigrated] void M(MigrateVma args).</summary>
    OnMigrated,
    /// <summary>[AllocatePage] bool M(int order, bool toDevice, out ulong pfn).</summary>
    AllocatePage,
    /// <summary>[BeforeMigrateToRam] bool M(in VmFault vmf).</summary>
    BeforeMigrateToRam,
}
