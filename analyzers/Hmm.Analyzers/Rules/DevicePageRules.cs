using Microsoft.CodeAnalysis;

namespace Hmm.Analyzers.Rules;

/// <summary>
/// Descriptors and contract names of the device-page rules (HMM1040–HMM1049): the migration copy
/// step (MIG-R06), references on another driver's pagemap, CPU access to device-private pages. Kept apart from
/// <see cref="HmmRules"/> so both ranges grow without touching each other's files; the analyzer
/// lists both.
/// </summary>
internal static class DevicePageRules
{
    public const string DestinationPfn = "Hmm.Dsl.DestinationPfnAttribute";
    public const string CopyMayFail = "Hmm.Dsl.CopyMayFailAttribute";
    public const string CommitsDestinations = "Hmm.Dsl.CommitsDestinationsAttribute";
    public const string DevicePrivatePfn = "Hmm.Dsl.DevicePrivatePfnAttribute";
    public const string CpuAccess = "Hmm.Dsl.CpuAccessAttribute";

    /// <summary>The runtime types these rules read, for the test that checks them against the runtime.</summary>
    public static readonly string[] AllRuntimeTypes = [DestinationPfn, CopyMayFail, CommitsDestinations, DevicePrivatePfn, CpuAccess];

    private static DiagnosticDescriptor Rule(string id, string title, string message, string category, string description, bool end) =>
        new(id, title, message, category, DiagnosticSeverity.Warning, isEnabledByDefault: true, description,
            helpLinkUri: "docs/diagnostics/" + id + ".md",
            customTags: end ? [WellKnownDiagnosticTags.CompilationEnd] : []);

    public static readonly DiagnosticDescriptor FailedCopyCommitted = Rule("HMM1040", "Destination of a failed copy committed (MIG-R06)",
        "'{0}' commits a destination whose copy failed at line {1}{2}: the CPU will read garbage once the migration entry is replaced", HmmRules.MigrationCategory,
        "A destination page may stay in dst[] only once its copy succeeded: when a fallible copy (CopyEngine.TryCopy) fails, the entry must be cleared (dst[i] = 0) before migrate_vma_pages, and a destination must not be written to dst[] after its copy failed.",
        end: true);

    public static readonly DiagnosticDescriptor PagemapReferenceLeaked = Rule("HMM1041", "Pagemap reference not put on some path",
        "The '{0}' reference taken here is not put on some path: the provider's device memory can never be unplugged", HmmRules.MigrationCategory,
        "get_dev_pagemap (DevPagemap.Get) pins another driver's pagemap so its memory stays plugged while it is used; every reference needs a put_dev_pagemap (DevPagemap.Put) on every path, or memunmap_pages of the provider waits forever.",
        end: true);

    public static readonly DiagnosticDescriptor CpuReadsDevicePrivate = Rule("HMM1042", "CPU access to a device-private page",
        "A device-private pfn reaches a CPU access{0}: private device memory has no CPU mapping, use the device's copy engine", HmmRules.MigrationCategory,
        "Device-private memory (MEMORY_DEVICE_PRIVATE) is not addressable by the CPU: kmap/copy_highpage of such a page reads garbage or faults. A [DevicePrivatePfn] value (vmf->page in migrate_to_ram) must reach its bytes through the device (CopyEngine), never through a [CpuAccess] parameter.",
        end: true);

    public static readonly DiagnosticDescriptor[] All = [FailedCopyCommitted, PagemapReferenceLeaked, CpuReadsDevicePrivate];
}
