using System.Runtime.CompilerServices;
using Hmm.Runtime.Mm;

namespace Hmm.Runtime.Migration;

/// <summary>
/// Fills the mm layer's contracts that only the migration layer can honour, when the runtime
/// assembly loads — so layers point downward only and the mm core still reaches migration.
/// </summary>
internal static class MigrationModule
{
#pragma warning disable CA2255 // a module initializer is the point: wiring must exist before any Machine is used
    [ModuleInitializer]
    internal static void Install() => Machine.CoherentFolioMigration = MigrateDevice.MigrateCoherentFolio;
#pragma warning restore CA2255
}
