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
/// bodies with a <c>MigrateVma</c> parameter pay for that second taint pass. A migration kept in a
/// <c>MigrateVma</c> field or property of the driver is followed the same way: bodies reading one back
/// record what its <c>Src</c> would reach, and compilation end reports those whose member some body
/// stores a device-private-selecting migration in (only types declaring such a member pay). A
/// migration selecting system (or coherent) pages too may name device-private pages in any entry:
/// its <c>Src</c> is a source as well, except where a check on <c>DevPagemap.Of(machine, pfn)</c>
/// (page_pgmap / is_device_private_page) says the page is not device-private.
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
            foreach (var (at, suffix) in ResolveFields(flows))
                if (seen.Add((at.SourceTree?.FilePath, at.SourceSpan.Start)))
                    end.ReportDiagnostic(Diagnostic.Create(DevicePageRules.CpuReadsDevicePrivate, at, suffix));
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

        /// <summary>MigrateVma fields / properties of a driver that some body stores a migration selecting device-private pages in.</summary>
        public ConcurrentDictionary<ISymbol, bool> PrivateFields { get; } = new(SymbolEqualityComparer.Default);

        /// <summary>A CPU access of a src pfn of a migration read back from a field (reported if the field holds a device-private migration).</summary>
        public ConcurrentBag<(ISymbol Field, Location At, string Via)> FieldSinks { get; } = new();

        /// <summary>A src pfn of a field's migration handed to a helper parameter (reported if that parameter reaches the CPU).</summary>
        public ConcurrentBag<(ISymbol Field, Pass To)> FieldToPfn { get; } = new();

        /// <summary>A field's migration handed to a helper's MigrateVma parameter (reported if its Src reaches the CPU there).</summary>
        public ConcurrentBag<(ISymbol Field, Pass To)> FieldMigrationPasses { get; } = new();
    }

    /// <summary>
    /// Compilation end, for migrations kept in a field: the bodies that read one back recorded what its
    /// <c>Src</c> entries would reach were it device-private; those whose field some body stores a
    /// migration selecting device-private pages in are findings. Returns the diagnostics' locations and suffixes.
    /// </summary>
    private static List<(Location At, string Suffix)> ResolveFields(Flows flows)
    {
        var found = new List<(Location, string)>();
        if (flows.PrivateFields.IsEmpty) return found;
        foreach (var (field, at, via) in flows.FieldSinks)
            if (flows.PrivateFields.ContainsKey(field)) found.Add((at, " (the migration read back from '" + field.Name + "' selects device-private pages; " + via + ")"));
        foreach (var (field, to) in flows.FieldToPfn)
            if (flows.PrivateFields.ContainsKey(field) && flows.Sinks.TryGetValue((to.Callee.OriginalDefinition, to.Param), out var via))
                found.Add((to.Location, " (a src pfn of the migration in '" + field.Name + "', via " + to.Callee.Name + " → " + via + ")"));
        foreach (var (field, to) in flows.FieldMigrationPasses)
            if (flows.PrivateFields.ContainsKey(field) && flows.SrcSinks.TryGetValue((to.Callee.OriginalDefinition, to.Param), out var via))
                found.Add((to.Location, " (the migration in '" + field.Name + "', via " + to.Callee.Name + " → " + via + ")"));
        return found;
    }

    private static void Analyze(OperationBlockAnalysisContext context, IMethodSymbol method, IOperation body, INamedTypeSymbol privateAttr, INamedTypeSymbol cpuAttr,
        INamedTypeSymbol? migrateVma, Flows flows)
    {
        bool privateSrc = PrivateMigration(body, out bool mixed);
        Run(context, method, body, new Taint(privateAttr, privateSrc, null), cpuAttr, migrateVma, flows);
        if (migrateVma == null) return;
        // A migration handed in by a caller: assume it device-private only and see whether its Src reaches the CPU.
        if (!privateSrc)
            foreach (var p in method.Parameters)
                if (SymbolEqualityComparer.Default.Equals(p.Type, migrateVma))
                    Run(context, method, body, new Taint(privateAttr, false, p), cpuAttr, migrateVma, flows);
        // A migration kept in a field of the driver: stored here (this body selects device-private pages) or read
        // back here (assume it device-private and record what its Src reaches; compilation end decides).
        if (!HasMigrationMember(method.ContainingType, migrateVma)) return;
        List<ISymbol>? readBack = null;
        foreach (var op in body.Descendants())
        {
            if (privateSrc && op is ISimpleAssignmentOperation a)
            {
                if (MigrationMember(a.Target, migrateVma) is { } stored)
                {
                    if (StoresPrivate(a.Value, body, true)) flows.PrivateFields.TryAdd(stored, mixed);
                }
                else if (a.Target is IPropertyReferenceOperation { Property.Name: "Flags" } ft && MigrationMember(ft.Instance, migrateVma) is { } flagged
                    && SelectsPrivate(a, out bool m))
                    flows.PrivateFields.TryAdd(flagged, m);
            }
            if (!privateSrc && op is IPropertyReferenceOperation { Property.Name: "Src" } src && MigrationMember(src.Instance, migrateVma) is { } read
                && !(readBack ??= new()).Contains(read, SymbolEqualityComparer.Default))
                readBack.Add(read);
        }
        if (readBack != null)
            foreach (var f in readBack)
                Run(context, method, body, new Taint(privateAttr, false, f), cpuAttr, migrateVma, flows);
    }

    /// <summary>Whether the type declares a MigrateVma field or property (only such drivers keep a migration in a member).</summary>
    private static bool HasMigrationMember(INamedTypeSymbol? type, INamedTypeSymbol migrateVma)
    {
        if (type == null) return false;
        foreach (var m in type.GetMembers())
            if ((m as IFieldSymbol)?.Type is { } ft && SymbolEqualityComparer.Default.Equals(ft, migrateVma)
                || (m as IPropertySymbol)?.Type is { } pt && SymbolEqualityComparer.Default.Equals(pt, migrateVma)) return true;
        return false;
    }

    /// <summary>A MigrateVma field or property of this object (or a static one), or null.</summary>
    private static ISymbol? MigrationMember(IOperation? op, INamedTypeSymbol migrateVma) => Unwrap(op) switch
    {
        IFieldReferenceOperation { Instance: null or IInstanceReferenceOperation } f when SymbolEqualityComparer.Default.Equals(f.Field.Type, migrateVma) => f.Field.OriginalDefinition,
        IPropertyReferenceOperation { Instance: null or IInstanceReferenceOperation } p when SymbolEqualityComparer.Default.Equals(p.Property.Type, migrateVma) => p.Property.OriginalDefinition,
        _ => null,
    };

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
                        case IVariableDeclaratorOperation d when d.Initializer != null && taint.IsPagemapProbe(d.Initializer.Value):
                            changed |= taint.Probes.Add(d.Symbol);
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
                // A read behind a check that the page is not device-private (DevPagemap.Of(...) == null,
                // is not { Kind: Private }, an early continue on a device-private one) is a system page.
                bool bad = any && taint.Holds(a.Value) && !(cpu || source ? GuardedNotPrivate(a, taint) : false);
                if (assumed is IParameterSymbol)
                {
                    if (cpu && bad) flows.SrcSinks.TryAdd((method.OriginalDefinition, assumed.Name), inv.TargetMethod.ContainingType.Name + "." + inv.TargetMethod.Name);
                    else if (source && bad) flows.SrcToPfn.Add((method.OriginalDefinition, assumed.Name, inv.TargetMethod.OriginalDefinition, a.Parameter.Name));
                    continue;
                }
                if (assumed != null)
                {
                    if (cpu && bad) flows.FieldSinks.Add((assumed, a.Value.Syntax.GetLocation(), inv.TargetMethod.ContainingType.Name + "." + inv.TargetMethod.Name));
                    else if (source && bad) flows.FieldToPfn.Add((assumed, new Pass(inv.TargetMethod.OriginalDefinition, a.Parameter.Name, a.Value.Syntax.GetLocation())));
                    continue;
                }
                // A migration kept in a field handed to a helper: a finding if the field holds a device-private one.
                if (source && !taint.PrivateSrc && migrateVma != null && MigrationMember(a.Value, migrateVma) is { } member)
                    flows.FieldMigrationPasses.Add((member, new Pass(inv.TargetMethod.OriginalDefinition, a.Parameter.Name, a.Value.Syntax.GetLocation())));
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
    private static bool PrivateMigration(IOperation body, out bool mixed)
    {
        mixed = false;
        bool found = false;
        foreach (var op in body.Descendants())
            if (op is ISimpleAssignmentOperation a && SelectsPrivate(a, out bool m))
            {
                mixed |= m;
                found = true;
            }
        return found;
    }

    /// <summary>
    /// Whether <paramref name="a"/> is a <c>MigrateVma.Flags</c> assignment selecting device-private pages;
    /// <paramref name="mixed"/>: system or coherent pages too (MIGRATE_VMA_SELECT_SYSTEM / _DEVICE_COHERENT: entries
    /// may then be CPU-addressable pages, and only those whose page is device-private — is_device_private_page — are not).
    /// </summary>
    private static bool SelectsPrivate(ISimpleAssignmentOperation a, out bool mixed)
    {
        mixed = false;
        if (a is not { Target: IPropertyReferenceOperation { Property.Name: "Flags" } target }
            || target.Property.ContainingType.ToDisplayString() != MigrateVmaType
            || a.Value.ConstantValue is not { HasValue: true, Value: { } v }
            || target.Property.Type is not INamedTypeSymbol { TypeKind: TypeKind.Enum } e || e.ToDisplayString() != MigrateSelectType
            || Bits(e, "DevicePrivate") is not long dp || dp == 0) return false;
        long flags = Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture);
        if ((flags & dp) == 0) return false;
        mixed = (flags & ((Bits(e, "System") ?? 0) | (Bits(e, "DeviceCoherent") ?? 0))) != 0;
        return true;
    }

    /// <summary>
    /// Whether a migration value stored in a member selects device-private pages: a <c>new MigrateVma { Flags = ... }</c>
    /// by its initializer, a local by the Flags the body gives it; anything else by the body's own verdict.
    /// </summary>
    private static bool StoresPrivate(IOperation value, IOperation body, bool bodyVerdict)
    {
        switch (Unwrap(value))
        {
            case IObjectCreationOperation { Initializer: { } init }:
                foreach (var i in init.Initializers)
                    if (i is ISimpleAssignmentOperation { Target: IPropertyReferenceOperation { Property.Name: "Flags" } } fa) return SelectsPrivate(fa, out _);
                return false;
            case IObjectCreationOperation:
                return false;
            case ILocalReferenceOperation l:
                foreach (var op in body.Descendants())
                {
                    if (op is ISimpleAssignmentOperation { Target: IPropertyReferenceOperation { Property.Name: "Flags" } ft } fa
                        && Unwrap(ft.Instance) is ILocalReferenceOperation fl && SymbolEqualityComparer.Default.Equals(fl.Local, l.Local) && SelectsPrivate(fa, out _)) return true;
                    if (op is IVariableDeclaratorOperation d && SymbolEqualityComparer.Default.Equals(d.Symbol, l.Local) && d.Initializer != null
                        && StoresPrivate(d.Initializer.Value, body, false)) return true;
                }
                return false;
            default:
                return bodyVerdict;
        }
    }

    private static long? Bits(INamedTypeSymbol selectEnum, string member) =>
        selectEnum.GetMembers(member).FirstOrDefault() is IFieldSymbol { ConstantValue: { } c } ? Convert.ToInt64(c, System.Globalization.CultureInfo.InvariantCulture) : null;

    private const string DevPagemapType = "Hmm.Runtime.DeviceMemory.DevPagemap";

    /// <summary>
    /// Whether the argument sits where the pfn is known not to be device-private: in the branch of an
    /// <c>if</c> / conditional whose condition says so, or after <c>if (device-private) continue;</c>
    /// (return, break, throw) earlier in an enclosing block. The checks understood are on
    /// <c>DevPagemap.Of(machine, pfn)</c> of a device-private candidate (or a local holding it):
    /// <c>== null</c> / <c>is null</c> (system memory), <c>?.Kind != DevicePageKind.Private</c>,
    /// <c>is not { Kind: DevicePageKind.Private }</c>, and their negations and conjunctions.
    /// </summary>
    private static bool GuardedNotPrivate(IOperation at, Taint taint)
    {
        IOperation child = at;
        for (var p = at.Parent; p != null; child = p, p = p.Parent)
        {
            if (p is IConditionalOperation c && !ReferenceEquals(c.Condition, child) && SaysNotPrivate(c.Condition, ReferenceEquals(child, c.WhenTrue), taint)) return true;
            if (p is IBlockOperation b)
                foreach (var stmt in b.Operations)
                {
                    if (ReferenceEquals(stmt, child)) break;
                    if (stmt is IConditionalOperation { WhenFalse: null } g && Exits(g.WhenTrue) && SaysNotPrivate(g.Condition, false, taint)) return true;
                }
            if (p is IAnonymousFunctionOperation or ILocalFunctionOperation) break;
        }
        return false;
    }

    private static bool Exits(IOperation op) => op switch
    {
        IBranchOperation or IReturnOperation => true,
        IExpressionStatementOperation { Operation: IThrowOperation } => true,
        IThrowOperation => true,
        IBlockOperation { Operations.Length: > 0 } b => Exits(b.Operations[b.Operations.Length - 1]),
        _ => false,
    };

    /// <summary>Whether, when <paramref name="condition"/> evaluates to <paramref name="when"/>, the probed pfn is not device-private.</summary>
    private static bool SaysNotPrivate(IOperation condition, bool when, Taint taint)
    {
        switch (Unwrap(condition))
        {
            case IUnaryOperation { OperatorKind: UnaryOperatorKind.Not } u:
                return SaysNotPrivate(u.Operand, !when, taint);
            case IBinaryOperation { OperatorKind: BinaryOperatorKind.ConditionalAnd } both when when:
                return SaysNotPrivate(both.LeftOperand, true, taint) || SaysNotPrivate(both.RightOperand, true, taint);
            case IBinaryOperation { OperatorKind: BinaryOperatorKind.ConditionalOr } either when !when:
                return SaysNotPrivate(either.LeftOperand, false, taint) || SaysNotPrivate(either.RightOperand, false, taint);
            case IBinaryOperation { OperatorKind: BinaryOperatorKind.Equals or BinaryOperatorKind.NotEquals } eq:
            {
                bool equals = eq.OperatorKind == BinaryOperatorKind.Equals;
                foreach (var (probe, other) in new[] { (eq.LeftOperand, eq.RightOperand), (eq.RightOperand, eq.LeftOperand) })
                {
                    var o = Unwrap(other);
                    // Of(...) == null: system memory.
                    if (taint.IsPagemapProbe(probe) && o is { ConstantValue: { HasValue: true, Value: null } }) return when == equals;
                    // Of(...)?.Kind == Private: device-private exactly when true.
                    if (taint.IsKindProbe(probe) && IsPrivateKind(o)) return when != equals;
                }
                return false;
            }
            case IIsPatternOperation ip when taint.IsPagemapProbe(ip.Value):
            {
                var (match, nonMatch) = PatternNotPrivate(ip.Pattern);
                return when ? match : nonMatch;
            }
            case IIsPatternOperation kp when taint.IsKindProbe(kp.Value):
            {
                var (match, nonMatch) = KindPatternNotPrivate(kp.Pattern);
                return when ? match : nonMatch;
            }
            default:
                return false;
        }
    }

    /// <summary>For a pattern on <c>DevPagemap.Of(...)</c>: whether a match / a non-match means the page is not device-private.</summary>
    private static (bool Match, bool NonMatch) PatternNotPrivate(IPatternOperation pattern)
    {
        switch (pattern)
        {
            case INegatedPatternOperation n:
                var (m, nm) = PatternNotPrivate(n.Pattern);
                return (nm, m);
            case IConstantPatternOperation { Value.ConstantValue: { HasValue: true, Value: null } }:
                return (true, false);
            case IRecursivePatternOperation r:
                foreach (var sub in r.PropertySubpatterns)
                    if (sub.Member is IPropertyReferenceOperation { Property.Name: "Kind" })
                    {
                        var (km, knm) = KindPatternNotPrivate(sub.Pattern);
                        // A non-match is null (system) or a page of another kind.
                        return (km, knm);
                    }
                return (false, true);
            case ITypePatternOperation or IDeclarationPatternOperation:
                return (false, true);
            default:
                return (false, false);
        }
    }

    /// <summary>For a pattern on the pagemap's <c>Kind</c>: whether a match / a non-match means not device-private.</summary>
    private static (bool Match, bool NonMatch) KindPatternNotPrivate(IPatternOperation pattern) => pattern switch
    {
        INegatedPatternOperation n => Swap(KindPatternNotPrivate(n.Pattern)),
        IConstantPatternOperation c when IsPrivateKind(c.Value) => (false, true),
        IConstantPatternOperation => (true, false),
        _ => (false, false),
    };

    private static (bool, bool) Swap((bool A, bool B) t) => (t.B, t.A);

    private static bool IsPrivateKind(IOperation? op) =>
        Unwrap(op) is { ConstantValue: { HasValue: true, Value: { } v } } k && Unwrap(k)!.Type?.Name == "DevicePageKind"
        && Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture) == 1;

    /// <summary>What holds a device-private pfn in one body.</summary>
    private sealed class Taint(INamedTypeSymbol privateAttr, bool privateSrc, ISymbol? assumedMigration)
    {
        public HashSet<ILocalSymbol> Locals { get; } = new(SymbolEqualityComparer.Default);

        /// <summary>Locals holding <c>DevPagemap.Of(machine, pfn)</c> of a device-private candidate.</summary>
        public HashSet<ILocalSymbol> Probes { get; } = new(SymbolEqualityComparer.Default);

        /// <summary><c>DevPagemap.Of(machine, pfn)</c> (page_pgmap) of a candidate pfn, or a local holding it.</summary>
        public bool IsPagemapProbe(IOperation? op) => Unwrap(op) switch
        {
            IInvocationOperation { TargetMethod.Name: "Of" } i => i.TargetMethod.ContainingType.ToDisplayString() == DevPagemapType && i.Arguments.Any(x => Holds(x.Value)),
            ILocalReferenceOperation l => Probes.Contains(l.Local),
            _ => false,
        };

        /// <summary>The <c>Kind</c> of a pagemap probe: <c>Of(...)?.Kind</c> or <c>pg.Kind</c>.</summary>
        public bool IsKindProbe(IOperation? op) => Unwrap(op) switch
        {
            IConditionalAccessOperation { WhenNotNull: var w } ca => Unwrap(w) is IPropertyReferenceOperation { Property.Name: "Kind" } && IsPagemapProbe(ca.Operation),
            IPropertyReferenceOperation { Property.Name: "Kind", Instance: { } inst } => IsPagemapProbe(inst),
            _ => false,
        };

        /// <summary>The body sets up a device-private-only migration.</summary>
        public bool PrivateSrc { get; } = privateSrc;

        /// <summary>A MigrateVma parameter, field or property assumed device-private only (its <c>Src</c> entries are device pages), or null.</summary>
        public ISymbol? AssumedMigration { get; } = assumedMigration;

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
                && (PrivateSrc || (AssumedMigration != null && Unwrap(p.Instance) switch
                {
                    IParameterReferenceOperation pr => SymbolEqualityComparer.Default.Equals(pr.Parameter, AssumedMigration),
                    IFieldReferenceOperation { Instance: null or IInstanceReferenceOperation } fr => SymbolEqualityComparer.Default.Equals(fr.Field.OriginalDefinition, AssumedMigration),
                    IPropertyReferenceOperation { Instance: null or IInstanceReferenceOperation } mp => SymbolEqualityComparer.Default.Equals(mp.Property.OriginalDefinition, AssumedMigration),
                    _ => false,
                })),
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
