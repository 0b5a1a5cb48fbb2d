namespace Hmm.Generators;

/// <summary>
/// The runtime types the generator recognises, by metadata name only (generators never reference
/// Hmm.Runtime). Tests check every name against the real type with <c>typeof(...).FullName</c>.
/// </summary>
internal static class KnownNames
{
    /// <summary>Hmm.Dsl.HmmDriverAttribute: the generator's entry point.</summary>
    public const string HmmDriverAttribute = "Hmm.Dsl.HmmDriverAttribute";
    /// <summary>Hmm.Dsl.DeviceMemoryAttribute.</summary>
    public const string DeviceMemoryAttribute = "Hmm.Dsl.DeviceMemoryAttribute";
    /// <summary>Hmm.Dsl.FaultBufferAttribute.</summary>
    public const string FaultBufferAttribute = "Hmm.Dsl.FaultBufferAttribute";
    /// <summary>Hmm.Dsl.P2pExporterAttribute.</summary>
    public const string P2pExporterAttribute = "Hmm.Dsl.P2pExporterAttribute";
    /// <summary>Hmm.Dsl.P2pImporterAttribute.</summary>
    public const string P2pImporterAttribute = "Hmm.Dsl.P2pImporterAttribute";
    /// <summary>Hmm.Dsl.OnInvalidateAttribute.</summary>
    public const string OnInvalidateAttribute = "Hmm.Dsl.OnInvalidateAttribute";
    /// <summary>Hmm.Dsl.OnMirrorFaultAttribute.</summary>
    public const string OnMirrorFaultAttribute = "Hmm.Dsl.OnMirrorFaultAttribute";
    /// <summary>Hmm.Dsl.CopyPagesAttribute.</summary>
    public const string CopyPagesAttribute = "Hmm.Dsl.CopyPagesAttribute";
    /// <summary>Hmm.Dsl.OnPageFreeAttribute.</summary>
    public const string OnPageFreeAttribute = "Hmm.Dsl.OnPageFreeAttribute";
    /// <summary>Hmm.Dsl.OnMigrateToRamAttribute.</summary>
    public const string OnMigrateToRamAttribute = "Hmm.Dsl.OnMigrateToRamAttribute";
    /// <summary>Hmm.Dsl.FaultPolicyAttribute.</summary>
    public const string FaultPolicyAttribute = "Hmm.Dsl.FaultPolicyAttribute";
    /// <summary>Hmm.Dsl.OnReleaseAttribute.</summary>
    public const string OnReleaseAttribute = "Hmm.Dsl.OnReleaseAttribute";
    /// <summary>Hmm.Dsl.OnP2pExportAttribute.</summary>
    public const string OnP2pExportAttribute = "Hmm.Dsl.OnP2pExportAttribute";
    /// <summary>Hmm.Dsl.OnP2pImportAttribute.</summary>
    public const string OnP2pImportAttribute = "Hmm.Dsl.OnP2pImportAttribute";
    /// <summary>Hmm.Dsl.OnMigratedAttribute.</summary>
    public const string OnMigratedAttribute = "Hmm.Dsl.OnMigratedAttribute";
    /// <summary>Hmm.Dsl.AllocatePageAttribute.</summary>
    public const string AllocatePageAttribute = "Hmm.Dsl.AllocatePageAttribute";
    /// <summary>Hmm.Dsl.BeforeMigrateToRamAttribute.</summary>
    public const string BeforeMigrateToRamAttribute = "Hmm.Dsl.BeforeMigrateToRamAttribute";
    /// <summary>Hmm.Dsl.IDeviceMemoryUser: what a shared device memory calls back for migrate_to_ram.</summary>
    public const string DeviceMemoryUser = "Hmm.Dsl.IDeviceMemoryUser";
    /// <summary>Hmm.Runtime.Locking.KernelMutex: the only type an UpdateLock may name.</summary>
    public const string KernelMutex = "Hmm.Runtime.Locking.KernelMutex";
}
