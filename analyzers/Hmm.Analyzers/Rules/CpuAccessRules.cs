using System.Collections.Concurrent;
using Hmm.Analyzers.Flow;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;
using static Hmm.Analyzers.Flow.OperationTrees;

namespace Hmm.Analyzers.Rules;

/// <summary>
/// HMM1042: a device-private pfn (a <c>[DevicePrivatePfn]</c> member such as <c>VmFault.Page</c>)
/// reaching a <c>[CpuAccess]</c> parameter (kmap, copy_highpage) — the CPU reading or writing
/// memory it has no mapping for. Sources: <c>[DevicePrivatePfn]</c> members (<c>VmFault.Page</c>,
/// <c>MigrateVma.FaultPage</c>) and the <c>Src</c> entries of a migration the body sets up to
/// collect device-private pages only (migrate_to_ram's own migration: its src pfns are device
/// pages). Values are followed through locals (assignments, pfn arithmetic, <c>&gt;&gt; Shift</c>,
/// <c>MigratePfn.ToPfn</c>, conversions; not through other calls, which translate —
/// <c>BackingOf(pfn)</c> is another page) and into source helpers' parameters, at any depth, at
/// compilation end. A device-private-only migration handed to a source helper is followed too: a
/// helper's <c>MigrateVma</c> parameter whose <c>Src</c> entries reach a CPU access (itself or
/// through further helpers, at any depth) makes the call passing such a migration a finding. Only
/// bodies with a <c>MigrateVma</c> parameter pay for that second taint pass.
/// </summary>
internal static class CpuAccessRules
{
    /// <summary>A device-private value (or a device-private-only migration) handed to a source method's parameter.</summary>
    private sealed class Pass(IMethodSymbol callee, string param, Location location, string? via = null)
    {
        public IMethodSymbol Callee { get; } = callee;
        public string Param { get; } = param;
        public Location Location { get; } = location;

        /// <summary>For a migration pass: the chain to the CPU access, already resolved.</summary>
        public string? Via { get; } = via;
    }

    public static void Register(Compilation compilation, OperationDispatch operations)
    {
        if (RuntimeTypes.Of(compilation).Get(DevicePageRules.DevicePrivatePfn) is not { } privateAttr
            || RuntimeTypes.Of(compilation).Get(DevicePageRules.CpuAccess) is not { } cpuAttr) return;
        // (method, parameter) pairs whose value reaches a CPU access, directly or through further helpers.
        var sinks = new ConcurrentDictionary<(IMethodSymbol, string), string>();
        var forwards = new ConcurrentBag<(IMethodSymbol From, string FromParam, IMethodSymbol To, string ToParam)>();
        var passes = new ConcurrentBag<Pass>();
        var flows = new Flows(sinks, forwards, passes);
        var migrateVma = RuntimeTypes.Of(compilation).Get(MigrateVmaType);
        operations.OnBlock(b =>
        {
            if (b.OwningSymbol is not IMethodSymbol method) return;
            foreach (var block in b.OperationBlocks)
                Analyze(b, method, block, privateAttr, cpuAttr, migrateVma, flows);
        });
        operations.OnCompilationEnd(end =>
        {
            // Close the sinks over forwarded parameters (a helper handing its parameter to a helper that reads it).
            bool changed = true;
            for (int round = 0; changed && round < 32; round++)
            {
                changed = false;
                foreach (var f in forwards)
                {
                    if (sinks.TryGetValue((f.To.OriginalDefinition, f.ToParam), out var via) && sinks.TryAdd((f.From.OriginalDefinition, f.FromParam), f.To.Name + " → " + via))
                        changed = true;
                    // A helper handing its migration parameter on to a helper whose migration's Src reaches the CPU.
                    if (flows.SrcSinks.TryGetValue((f.To.OriginalDefinition, f.ToParam), out var srcVia) && flows.SrcSinks.TryAdd((f.From.OriginalDefinition, f.FromParam), f.To.Name + " → " + srcVia))
                        changed = true;
                }
                // A helper passing a src pfn of its migration parameter to a helper parameter that reaches the CPU.
                foreach (var f in flows.SrcToPfn)
                    if (sinks.TryGetValue((f.To.OriginalDefinition, f.ToParam), out var via) && flows.SrcSinks.TryAdd((f.From.OriginalDefinition, f.FromParam), f.To.Name + " → " + via))
                        changed = true;
            }
            foreach (var p in flows.MigrationPasses)
                if (flows.SrcSinks.TryGetValue((p.Callee.OriginalDefinition, p.Param), out var via))
                    passes.Add(new Pass(p.Callee, p.Param, p.Location, via));
            var list = new List<Pass>(passes);
            list.Sort((x, y) =>
            {
                int c = string.CompareOrdinal(x.Location.SourceTree?.FilePath, y.Location.SourceTree?.FilePath);
                return c != 0 ? c : x.Location.SourceSpan.Start.CompareTo(y.Location.SourceSpan.Start);
            });
            var seen = new HashSet<(string?, int)>();
            foreach (var p in list)
            {
                // A migration pass carries its chain (resolved above); a pfn pass looks its sink up.
                string? via = p.Via ?? (sinks.TryGetValue((p.Callee.OriginalDefinition, p.Param), out var v) ? v : null);
                if (via != null && seen.Add((p.Location.SourceTree?.FilePath, p.Location.SourceSpan.Start)))
                    end.ReportDiagnostic(Diagnostic.Create(DevicePageRules.CpuReadsDevicePrivate, p.Location, " (via " + p.Callee.Name + " → " + via + ")"));
            }
        });
    }

    /// <summary>What the bodies hand to compilation end.</summary>
    private sealed class Flows(ConcurrentDictionary<(IMethodSymbol, string), string> sinks, ConcurrentBag<(IMethodSymbol, string, IMethodSymbol, string)> forwards, ConcurrentBag<Pass> passes)
    {
        /// <summary>(method, parameter) pairs whose value reaches a CPU access.</summary>
        public ConcurrentDictionary<(IMethodSymbol, string), string> Sinks { get; } = sinks;
        public ConcurrentBag<(IMethodSymbol From, string FromParam, IMethodSymbol To, string ToParam)> Forwards { get; } = forwards;
        public ConcurrentBag<Pass> Passes { get; } = passes;

        /// <summary>(method, MigrateVma parameter) pairs: were that migration device-private only, its Src entries would reach a CPU access.</summary>
        public ConcurrentDictionary<(IMethodSymbol, string), string> SrcSinks { get; } = new();

        /// <summary>A src pfn of the migration parameter handed to a helper's parameter (a sink there makes the migration parameter one).</summary>
        public ConcurrentBag<(IMethodSymbol From, string FromParam, IMethodSymbol To, string ToParam)> SrcToPfn { get; } = new();

        /// <summary>A device-private-only migration handed to a source helper's MigrateVma parameter.</summary>
        public ConcurrentBag<Pass> MigrationPasses { get; } = new();
    }

    private static void Analyze(OperationBlockAnalysisContext context, IMethodSymbol method, IOperation body, INamedTypeSymbol privateAttr, INamedTypeSymbol cpuAttr,
        INamedTypeSymbol? migrateVma, Flows flows)
    {
        bool privateSrc = PrivateMigration(body);
        Run(context, method, body, new Taint(privateAttr, privateSrc, null), cpuAttr, migrateVma, flows);
        // A migration handed in by a caller: assume it device-private only and see whether its Src reaches the CPU.
        if (migrateVma != null && !privateSrc)
            foreach (var p in method.Parameters)
                if (SymbolEqualityComparer.Default.Equals(p.Type, migrateVma))
                    Run(context, method, body, new Taint(privateAttr, false, p), cpuAttr, migrateVma, flows);
    }

    /// <summary>
    /// One taint pass. Without an assumed parameter: report CPU accesses of device-private pfns and record
    /// sinks, passes and forwards. With one (<see cref="Taint.AssumedMigration"/>): record only what the
    /// assumption implies (a migration-parameter sink, or a src pfn handed to a helper).
    /// </summary>
    private static void Run(OperationBlockAnalysisContext context, IMethodSymbol method, IOperation body, Taint taint, INamedTypeSymbol cpuAttr, INamedTypeSymbol? migrateVma, Flows flows)
    {
        // Locals holding a device-private pfn: flow-insensitive, to a fixpoint over the body's assignments.
        var assumed = taint.AssumedMigration;
        bool any = taint.PrivateSrc || assumed != null;
        if (!any)
            foreach (var op in body.Descendants())
                if (taint.IsSource(op)) { any = true; break; }
        if (assumed != null && !any) return;
        if (any)
        {
            bool changed = true;
            for (int round = 0; changed && round < 8; round++)
            {
                changed = false;
                foreach (var op in body.Descendants())
                {
                    switch (op)
                    {
                        case IVariableDeclaratorOperation d when d.Initializer != null && taint.Holds(d.Initializer.Value):
                            changed |= taint.Locals.Add(d.Symbol);
                            break;
                        case IAssignmentOperation { Target: ILocalReferenceOperation t } a when taint.Holds(a.Value):
                            changed |= taint.Locals.Add(t.Local);
                            break;
                    }
                }
            }
        }
        foreach (var op in body.Descendants())
        {
            if (op is not IInvocationOperation inv) continue;
            bool source = SymbolNames.HasSource(inv.TargetMethod);
            foreach (var a in inv.Arguments)
            {
                if (a.Parameter == null) continue;
                bool cpu = HasAttr(a.Parameter, cpuAttr);
                bool bad = any && taint.Holds(a.Value);
                if (assumed != null)
                {
                    if (cpu && bad) flows.SrcSinks.TryAdd((method.OriginalDefinition, assumed.Name), inv.TargetMethod.ContainingType.Name + "." + inv.TargetMethod.Name);
                    else if (source && bad) flows.SrcToPfn.Add((method.OriginalDefinition, assumed.Name, inv.TargetMethod.OriginalDefinition, a.Parameter.Name));
                    continue;
                }
                if (cpu && bad)
                    context.ReportDiagnostic(Diagnostic.Create(DevicePageRules.CpuReadsDevicePrivate, a.Value.Syntax.GetLocation(), ""));
                else if (cpu && Unwrap(a.Value) is IParameterReferenceOperation p)
                    flows.Sinks.TryAdd((method.OriginalDefinition, p.Parameter.Name), inv.TargetMethod.ContainingType.Name + "." + inv.TargetMethod.Name);
                else if (source && bad)
                    flows.Passes.Add(new Pass(inv.TargetMethod.OriginalDefinition, a.Parameter.Name, a.Value.Syntax.GetLocation()));
                else if (source && Unwrap(a.Value) is IParameterReferenceOperation fp)
                    flows.Forwards.Add((method.OriginalDefinition, fp.Parameter.Name, inv.TargetMethod.OriginalDefinition, a.Parameter.Name));
                // migrate_to_ram's own device-private migration handed to a helper.
                if (source && taint.PrivateSrc && migrateVma != null && SymbolEqualityComparer.Default.Equals(a.Parameter.Type, migrateVma))
                    flows.MigrationPasses.Add(new Pass(inv.TargetMethod.OriginalDefinition, a.Parameter.Name, a.Value.Syntax.GetLocation()));
            }
        }
    }

    private const string MigrateVmaType = "Hmm.Runtime.Migration.MigrateVma";
    private const string MigratePfnType = "Hmm.Runtime.Migration.MigratePfn";
    private const string MigrateSelectType = "Hmm.Runtime.Migration.MigrateSelect";

    /// <summary>
    /// Whether the body sets up a migration that collects device-private pages only (<c>Flags =
    /// MigrateSelect.DevicePrivate</c>: migrate_to_ram's MIGRATE_VMA_SELECT_DEVICE_PRIVATE): every
    /// pfn its <c>Src</c> entries name is then a device-private page, the faulting page among them.
    /// </summary>
    private static bool PrivateMigration(IOperation body)
    {
        foreach (var op in body.Descendants())
            if (op is ISimpleAssignmentOperation { Target: IPropertyReferenceOperation { Property.Name: "Flags" } target } a
                && target.Property.ContainingType.ToDisplayString() == MigrateVmaType
                && a.Value.ConstantValue is { HasValue: true, Value: { } v }
                && target.Property.Type is INamedTypeSymbol { TypeKind: TypeKind.Enum } e && e.ToDisplayString() == MigrateSelectType
                && e.GetMembers("DevicePrivate").FirstOrDefault() is IFieldSymbol { ConstantValue: { } dp }
                && Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture) == Convert.ToInt64(dp, System.Globalization.CultureInfo.InvariantCulture))
                return true;
        return false;
    }

    /// <summary>What holds a device-private pfn in one body.</summary>
    private sealed class Taint(INamedTypeSymbol privateAttr, bool privateSrc, IParameterSymbol? assumedMigration)
    {
        public HashSet<ILocalSymbol> Locals { get; } = new(SymbolEqualityComparer.Default);

        /// <summary>The body sets up a device-private-only migration.</summary>
        public bool PrivateSrc { get; } = privateSrc;

        /// <summary>A MigrateVma parameter assumed device-private only (its <c>Src</c> entries are device pages), or null.</summary>
        public IParameterSymbol? AssumedMigration { get; } = assumedMigration;

        /// <summary>A <c>[DevicePrivatePfn]</c> member, or an entry of a device-private-only migration's <c>Src</c>.</summary>
        public bool IsSource(IOperation op) => op switch
        {
            IPropertyReferenceOperation p => HasAttr(p.Property, privateAttr),
            IFieldReferenceOperation f => HasAttr(f.Field, privateAttr),
            IInvocationOperation i => HasAttr(i.TargetMethod, privateAttr),
            IArrayElementReferenceOperation ae => (PrivateSrc || AssumedMigration != null) && IsSrc(ae.ArrayReference),
            _ => false,
        };

        /// <summary>The <c>Src</c> array of a device-private-only migration, or a local holding it (<c>var src = args.Src;</c>).</summary>
        private bool IsSrc(IOperation array) => Unwrap(array) switch
        {
            IPropertyReferenceOperation { Property.Name: "Src" } p => p.Property.ContainingType.ToDisplayString() == MigrateVmaType
                && (PrivateSrc || (AssumedMigration != null && Unwrap(p.Instance) is IParameterReferenceOperation pr && SymbolEqualityComparer.Default.Equals(pr.Parameter, AssumedMigration))),
            ILocalReferenceOperation l => Locals.Contains(l.Local),
            _ => false,
        };

        /// <summary>A device-private pfn (or src word): a source, a tainted local, pfn arithmetic or decoding of one (other calls translate and end the taint).</summary>
        public bool Holds(IOperation value)
        {
            var op = Unwrap(value);
            return op switch
            {
                null => false,
                ILocalReferenceOperation l => Locals.Contains(l.Local),
                IPropertyReferenceOperation { Property.Name: "Src" } p when PrivateSrc || AssumedMigration != null => IsSrc(p),
                IBinaryOperation { OperatorKind: BinaryOperatorKind.Add or BinaryOperatorKind.Subtract or BinaryOperatorKind.Or } b => Holds(b.LeftOperand) || Holds(b.RightOperand),
                // src[i] >> MigratePfn.Shift: the pfn of a migrate word.
                IBinaryOperation { OperatorKind: BinaryOperatorKind.RightShift } sh => Holds(sh.LeftOperand),
                IConditionalOperation c => Holds(c.WhenTrue) || (c.WhenFalse != null && Holds(c.WhenFalse)),
                ICoalesceOperation co => Holds(co.Value) || Holds(co.WhenNull),
                // MigratePfn.ToPfn(word) decodes; FaultPage.Value / GetValueOrDefault() unwrap the same pfn.
                IInvocationOperation { TargetMethod.Name: "ToPfn" } d when d.TargetMethod.ContainingType.ToDisplayString() == MigratePfnType && d.Arguments.Length == 1 => Holds(d.Arguments[0].Value),
                IInvocationOperation { TargetMethod.Name: "GetValueOrDefault", Instance: { } n } => Holds(n),
                IPropertyReferenceOperation { Property.Name: "Value", Instance: { } n } when n.Type?.OriginalDefinition.SpecialType == SpecialType.System_Nullable_T => Holds(n),
                _ => IsSource(op),
            };
        }
    }

    private static bool HasAttr(ISymbol symbol, INamedTypeSymbol attr)
    {
        foreach (var a in symbol.GetAttributes())
            if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, attr)) return true;
        return false;
    }
}
