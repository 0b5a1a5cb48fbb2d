using System.Collections.Concurrent;
using Hmm.Analyzers.Flow;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Hmm.Analyzers.Rules;

/// <summary>
/// HMM1042: a device-private pfn (a <c>[DevicePrivatePfn]</c> member such as <c>VmFault.Page</c>)
/// reaching a <c>[CpuAccess]</c> parameter (kmap, copy_highpage) — the CPU reading or writing
/// memory it has no mapping for. Values are followed through locals (assignments, pfn
/// arithmetic, conversions; not through calls, which translate — <c>BackingOf(pfn)</c> is another
/// page) and into source helpers' parameters, at any depth, at compilation end.
/// </summary>
internal static class CpuAccessRules
{
    /// <summary>A device-private value handed to a source method's parameter.</summary>
    private sealed class Pass(IMethodSymbol callee, string param, Location location)
    {
        public IMethodSymbol Callee { get; } = callee;
        public string Param { get; } = param;
        public Location Location { get; } = location;
    }

    public static void Register(CompilationStartAnalysisContext start)
    {
        var compilation = start.Compilation;
        if (compilation.GetTypeByMetadataName(DevicePageRules.DevicePrivatePfn) is not { } privateAttr
            || compilation.GetTypeByMetadataName(DevicePageRules.CpuAccess) is not { } cpuAttr) return;
        // (method, parameter) pairs whose value reaches a CPU access, directly or through further helpers.
        var sinks = new ConcurrentDictionary<(IMethodSymbol, string), string>();
        var forwards = new ConcurrentBag<(IMethodSymbol From, string FromParam, IMethodSymbol To, string ToParam)>();
        var passes = new ConcurrentBag<Pass>();
        start.RegisterOperationBlockAction(b =>
        {
            if (b.OwningSymbol is not IMethodSymbol method) return;
            foreach (var block in b.OperationBlocks)
                Analyze(b, method, block, privateAttr, cpuAttr, sinks, forwards, passes);
        });
        start.RegisterCompilationEndAction(end =>
        {
            // Close the sinks over forwarded parameters (a helper handing its parameter to a helper that reads it).
            bool changed = true;
            for (int round = 0; changed && round < 32; round++)
            {
                changed = false;
                foreach (var f in forwards)
                    if (sinks.TryGetValue((f.To.OriginalDefinition, f.ToParam), out var via) && sinks.TryAdd((f.From.OriginalDefinition, f.FromParam), f.To.Name + " → " + via))
                        changed = true;
            }
            var list = new List<Pass>(passes);
            list.Sort((x, y) =>
            {
                int c = string.CompareOrdinal(x.Location.SourceTree?.FilePath, y.Location.SourceTree?.FilePath);
                return c != 0 ? c : x.Location.SourceSpan.Start.CompareTo(y.Location.SourceSpan.Start);
            });
            var seen = new HashSet<(string?, int)>();
            foreach (var p in list)
                if (sinks.TryGetValue((p.Callee.OriginalDefinition, p.Param), out var via) && seen.Add((p.Location.SourceTree?.FilePath, p.Location.SourceSpan.Start)))
                    end.ReportDiagnostic(Diagnostic.Create(DevicePageRules.CpuReadsDevicePrivate, p.Location, " (via " + p.Callee.Name + " → " + via + ")"));
        });
    }

    private static void Analyze(OperationBlockAnalysisContext context, IMethodSymbol method, IOperation body, INamedTypeSymbol privateAttr, INamedTypeSymbol cpuAttr,
        ConcurrentDictionary<(IMethodSymbol, string), string> sinks, ConcurrentBag<(IMethodSymbol, string, IMethodSymbol, string)> forwards, ConcurrentBag<Pass> passes)
    {
        // Locals holding a device-private pfn: flow-insensitive, to a fixpoint over the body's assignments.
        var tainted = new HashSet<ILocalSymbol>(SymbolEqualityComparer.Default);
        bool any = false;
        foreach (var op in body.Descendants())
            if (IsSource(op, privateAttr)) { any = true; break; }
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
                        case IVariableDeclaratorOperation d when d.Initializer != null && Tainted(d.Initializer.Value, tainted, privateAttr):
                            changed |= tainted.Add(d.Symbol);
                            break;
                        case IAssignmentOperation { Target: ILocalReferenceOperation t } a when Tainted(a.Value, tainted, privateAttr):
                            changed |= tainted.Add(t.Local);
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
                bool bad = any && Tainted(a.Value, tainted, privateAttr);
                if (cpu && bad)
                    context.ReportDiagnostic(Diagnostic.Create(DevicePageRules.CpuReadsDevicePrivate, a.Value.Syntax.GetLocation(), ""));
                else if (cpu && Unwrap(a.Value) is IParameterReferenceOperation p)
                    sinks.TryAdd((method.OriginalDefinition, p.Parameter.Name), inv.TargetMethod.ContainingType.Name + "." + inv.TargetMethod.Name);
                else if (source && bad)
                    passes.Add(new Pass(inv.TargetMethod.OriginalDefinition, a.Parameter.Name, a.Value.Syntax.GetLocation()));
                else if (source && Unwrap(a.Value) is IParameterReferenceOperation fp)
                    forwards.Add((method.OriginalDefinition, fp.Parameter.Name, inv.TargetMethod.OriginalDefinition, a.Parameter.Name));
            }
        }
    }

    private static bool IsSource(IOperation op, INamedTypeSymbol privateAttr) => op switch
    {
        IPropertyReferenceOperation p => HasAttr(p.Property, privateAttr),
        IFieldReferenceOperation f => HasAttr(f.Field, privateAttr),
        IInvocationOperation i => HasAttr(i.TargetMethod, privateAttr),
        _ => false,
    };

    /// <summary>A device-private pfn: a source member, a tainted local, or pfn arithmetic on one (calls translate and end the taint).</summary>
    private static bool Tainted(IOperation value, HashSet<ILocalSymbol> tainted, INamedTypeSymbol privateAttr)
    {
        var op = Unwrap(value);
        return op switch
        {
            null => false,
            ILocalReferenceOperation l => tainted.Contains(l.Local),
            IBinaryOperation { OperatorKind: BinaryOperatorKind.Add or BinaryOperatorKind.Subtract or BinaryOperatorKind.Or } b =>
                Tainted(b.LeftOperand, tainted, privateAttr) || Tainted(b.RightOperand, tainted, privateAttr),
            IConditionalOperation c => Tainted(c.WhenTrue, tainted, privateAttr) || (c.WhenFalse != null && Tainted(c.WhenFalse, tainted, privateAttr)),
            ICoalesceOperation co => Tainted(co.Value, tainted, privateAttr) || Tainted(co.WhenNull, tainted, privateAttr),
            _ => IsSource(op, privateAttr),
        };
    }

    private static bool HasAttr(ISymbol symbol, INamedTypeSymbol attr)
    {
        foreach (var a in symbol.GetAttributes())
            if (SymbolEqualityComparer.Default.Equals(a.AttributeClass, attr)) return true;
        return false;
    }

    private static IOperation? Unwrap(IOperation? op)
    {
        while (op is IConversionOperation or IParenthesizedOperation)
            op = op is IConversionOperation c ? c.Operand : ((IParenthesizedOperation)op).Operand;
        return op;
    }
}
