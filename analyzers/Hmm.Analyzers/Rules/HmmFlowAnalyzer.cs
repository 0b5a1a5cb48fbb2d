using System.Collections.Concurrent;
using System.Collections.Immutable;
using Hmm.Analyzers.Flow;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Hmm.Analyzers.Rules;

/// <summary>
/// The HMM1xxx analyzer: per body, a flow analysis over the control-flow graph (in parallel);
/// at compilation end, the whole-program pass (summaries, callers, lock order). Costs nothing
/// in a compilation that does not reference Hmm.Runtime.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class HmmFlowAnalyzer : DiagnosticAnalyzer
{
    /// <inheritdoc/>
    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } = [.. HmmRules.All, .. DevicePageRules.All, .. MmuNotifierRules.All];

    /// <inheritdoc/>
    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(Start);
    }

    private static void Start(CompilationStartAnalysisContext start)
    {
        if (ContractSet.TryCreate(start.Compilation) is not { } contracts) return;
        var facts = new ConcurrentBag<MethodFacts>();
        var declared = new ConcurrentBag<LockEdge>();
        start.RegisterSymbolAction(s => DeclaredOrder(s, contracts, declared), SymbolKind.Field, SymbolKind.Property);
        // Every per-body and per-operation check runs from ONE operation-block action (see OperationDispatch).
        var operations = new OperationDispatch();
        operations.OnBlock(b => AnalyzeBody(b, contracts, facts));
        operations.On(o => WriteWithoutFault(o, contracts), OperationKind.SimpleAssignment);
        RangeRules.Register(contracts, operations);
        LifetimeRules.Register(contracts, operations);
        NotifierFieldRules.Register(start.Compilation, contracts, operations);
        CopyExposure.Register(start.Compilation, contracts, operations);
        CpuAccessRules.Register(start.Compilation, operations);
        MmuNotifierRules.Register(start.Compilation, operations);
        operations.Register(start);
        start.RegisterCompilationEndAction(end => new ProgramAnalysis(contracts, facts, declared).Run(end.ReportDiagnostic, end.CancellationToken));
    }

    private static void AnalyzeBody(OperationBlockAnalysisContext context, ContractSet contracts, ConcurrentBag<MethodFacts> sink)
    {
        if (context.OwningSymbol is not IMethodSymbol method) return;
        IOperation? body = null;
        foreach (var block in context.OperationBlocks)
            if (block is IMethodBodyBaseOperation or IBlockOperation) { body = block; break; }
        if (body == null) return;
        var self = contracts.For(method);
        bool stateful = self.Context != CallbackContext.None || !self.Requires.IsEmpty || !self.LockEffects.IsEmpty;
        var scan = BodyScan.Of(body, method, contracts, stopWhenStateful: stateful);
        stateful |= scan.Stateful;
        // A body that only sleeps or yields still matters: it is the back-off of its callers' EBUSY loops (HMM1037).
        // A helper storing a parameter away takes over the reference its caller hands it.
        var stored = scan.StoredParameters;
        if (!stateful && !scan.Calls && stored == null && !scan.BacksOff) return;
        bool deferrable = method.MethodKind is MethodKind.Ordinary && !IsExternallyVisible(method);
        var facts = new MethodFacts(method, self.Context, deferrable);
        if (stored != null) facts.ReleasedParams.UnionWith(stored);
        RetryLoops.Scan(body, contracts, facts);
        if (stateful)
        {
            var cfg = context.GetControlFlowGraph(body);
            new MethodFlow(contracts, cfg, facts).Run();
            // Verdicts of this body alone are local diagnostics (fixable in the editor).
            foreach (var d in facts.Diagnostics) context.ReportDiagnostic(d);
            facts.Diagnostics.Clear();
        }
        else
        {
            // No lock, reference or protocol effect in the body: every call sees the entry state.
            foreach (var inv in scan.Invocations)
            {
                context.CancellationToken.ThrowIfCancellationRequested();
                var m = inv.TargetMethod;
                var c = contracts.For(m);
                bool bcl = ContractSet.IsBlockingBcl(m);
                if (c.HasEffects || bcl || SymbolNames.HasSource(m))
                    facts.Calls.Add(new CallSite(m.OriginalDefinition, c, inv.Syntax.GetLocation(), ImmutableArray<HeldLock>.Empty, FlowFlags.None, bcl));
                // A forwarded parameter: whether this method releases what its caller hands it depends on the callee.
                if (SymbolNames.HasSource(m))
                    foreach (var a in inv.Arguments)
                        if (a.Parameter != null && a.Value is IParameterReferenceOperation pr)
                            facts.ParamPasses.Add(new ParamPass(m.OriginalDefinition, a.Parameter.Name, pr.Parameter.Name));
            }
        }
        sink.Add(facts);
    }

    /// <summary>Whether code outside the compilation can call the method (its needs are then its own contract).</summary>
    private static bool IsExternallyVisible(ISymbol symbol)
    {
        for (var s = symbol; s != null && s is not INamespaceSymbol; s = s.ContainingSymbol)
            if (s.DeclaredAccessibility is not (Accessibility.Public or Accessibility.Protected or Accessibility.ProtectedOrInternal)) return false;
        return true;
    }

    private static void DeclaredOrder(SymbolAnalysisContext context, ContractSet contracts, ConcurrentBag<LockEdge> sink)
    {
        foreach (var a in context.Symbol.GetAttributes())
        {
            if (!contracts.Is(a.AttributeClass, KnownNames.AcquiredAfter) || a.ConstructorArguments.Length != 1 || a.ConstructorArguments[0].Value is not string path) continue;
            if (MethodFlow.ResolvePath(path, context.Symbol.ContainingType) is not { } before) continue;
            var site = a.ApplicationSyntaxReference?.GetSyntax(context.CancellationToken).GetLocation();
            sink.Add(new LockEdge(before, MethodFlow.MemberKey(context.Symbol), site));
        }
    }

    /// <summary>HMM-R15: DefaultFlags assigned a value that may carry ReqWrite without ReqFault.</summary>
    private static void WriteWithoutFault(OperationSite context, ContractSet contracts)
    {
        var asg = (ISimpleAssignmentOperation)context.Operation;
        if (asg.Target is not IPropertyReferenceOperation { Property.Name: "DefaultFlags" } p || !contracts.Is(p.Property.ContainingType, KnownNames.HmmRange)) return;
        int combos = FlagCombos(asg.Value);
        // Bit 1 of the combination index is ReqWrite, bit 0 ReqFault: combination 2 is write without fault.
        if (combos > 0 && (combos & (1 << 2)) != 0)
            context.ReportDiagnostic(Diagnostic.Create(HmmRules.ReqWriteWithoutFault, asg.Value.Syntax.GetLocation()));
    }

    private const ulong ReqFault = 1UL << 63;
    private const ulong ReqWrite = 1UL << 62;

    /// <summary>The set of (write, fault) request combinations a flags expression may produce; -1 when unknown.</summary>
    private static int FlagCombos(IOperation op)
    {
        if (op.ConstantValue.HasValue)
        {
            ulong v = op.ConstantValue.Value switch { ulong u => u, long l => unchecked((ulong)l), int i => unchecked((ulong)i), uint ui => ui, _ => 0 };
            return 1 << (((v & ReqWrite) != 0 ? 2 : 0) | ((v & ReqFault) != 0 ? 1 : 0));
        }
        switch (op)
        {
            case IConversionOperation c: return FlagCombos(c.Operand);
            case IParenthesizedOperation p: return FlagCombos(p.Operand);
            case IConditionalOperation cond when cond.WhenFalse != null:
            {
                int a = FlagCombos(cond.WhenTrue), b = FlagCombos(cond.WhenFalse);
                return a < 0 || b < 0 ? -1 : a | b;
            }
            case IBinaryOperation { OperatorKind: BinaryOperatorKind.Or } bin:
            {
                int a = FlagCombos(bin.LeftOperand), b = FlagCombos(bin.RightOperand);
                if (a < 0 || b < 0) return -1;
                int r = 0;
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++)
                        if ((a & (1 << i)) != 0 && (b & (1 << j)) != 0) r |= 1 << (i | j);
                return r;
            }
            default: return -1;
        }
    }
}
