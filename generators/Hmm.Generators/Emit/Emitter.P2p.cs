using Hmm.Generators.Models;

namespace Hmm.Generators;

internal static partial class Emitter
{
    // Shape of the P2p part:
    //   partial class D
    //   {
    //       [P2pExporter] P2pExporter: a P2pBarExporter over the device's PCI function, its policy the [OnP2pExport] callback
    //       [P2pImporter] ImportPeer(start, end, write, out import): p2p-through-VMA import, then [OnP2pImport]
    //   }
    private static string EmitP2p(DriverModel m)
    {
        string exporter = "";
        if (m.P2pExporter)
        {
            string policy = m.Callback(CallbackKind.OnP2pExport) is { } p ? "this." + p : "null";
            exporter = $$"""

                    {{GeneratedCode}}
                    private global::Hmm.Runtime.Pci.P2pBarExporter? __hmmP2pExporter;

                    /// <summary>
                    /// The p2p exporter over the device's PCI function (set by <see cref="{{AttachCref(m)}}"/>): map its
                    /// special VMAs with <c>Process.Mmap(..., exporter)</c>; peers' p2p_map requests are
                    /// decided by the <c>[OnP2pExport]</c> callback (all allowed without one).
                    /// </summary>
                    {{GeneratedCode}}
                    public global::Hmm.Runtime.Pci.P2pBarExporter P2pExporter
                        => __hmmP2pExporter ?? throw new global::System.InvalidOperationException({{Literal(m.DriverName + ": not attached")}});

                    {{GeneratedCode}}
                    private void __HmmAttachP2p(global::Hmm.Runtime.Pci.PciFunction pci)
                        => __hmmP2pExporter = new global::Hmm.Runtime.Pci.P2pBarExporter(pci) { Policy = {{policy}} };
            """;
        }
        string importer = "";
        if (m.P2pImporter)
        {
            string program = Call(m, CallbackKind.OnP2pImport, "import") is { } c ? "e = " + c : "";
            importer = $$"""

                    /// <summary>
                    /// Imports [<paramref name="start"/>, <paramref name="end"/>) of a peer's exported VMA in the
                    /// mirrored process for this device's DMA (p2p through a VMA): checks reachability, asks the
                    /// exporter, then the <c>[OnP2pImport]</c> callback programs the device. The import follows
                    /// invalidations on its own (revocation, munmap). EINVAL when not attached; the exporter's or
                    /// the callback's errno otherwise. The caller disposes <paramref name="import"/>.
                    /// </summary>
                    {{GeneratedCode}}
                    {{MayBlock}}
                    public {{Errno}} ImportPeer(ulong start, ulong end, bool write, out global::Hmm.Runtime.Pci.P2pVmaImport? import)
                    {
                        import = null;
                        if (__hmmNotifier == null || Device.Pci is not { } pci) return {{Errno}}.EINVAL;
                        var candidate = new global::Hmm.Runtime.Pci.P2pVmaImport(pci, Process.Mm, start, end, write, Device.Meters);
                        var e = candidate.Map();
                        if (e == {{Errno}}.Ok)
                        {
                            import = candidate;
                            {{program}}
                        }
                        if (e != {{Errno}}.Ok)
                        {
                            import = null;
                            candidate.Dispose();
                        }
                        return e;
                    }
            """;
        }
        return $$"""
            partial class {{m.ClassName}}
            {{{Reindent(exporter, -4)}}{{Reindent(importer, -4)}}
            }
            """;
    }
}
