using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Operations;
using static Hmm.Analyzers.Flow.OperationTrees;

namespace Hmm.Analyzers.Flow;

/// <summary>A loop that retries a call on EBUSY with no bound in its exits; silent at compilation end if a call in it backs off.</summary>
internal sealed class BusyRetryLoop(Location call, string callee, ImmutableArray<IMethodSymbol> sourceCallees)
{
    /// <summary>The retried call (the diagnostic's span).</summary>
    public Location Call { get; } = call;
    public string Callee { get; } = callee;
    /// <summary>Source methods called inside the loop: one of them may back off (sleep, ReadBegin) two helpers deep.</summary>
    public ImmutableArray<IMethodSymbol> SourceCallees { get; } = sourceCallees;
}

/// <summary>
/// HMM1037's body-local half: loops (while, do, for) that retry a call whose <c>Errno</c> result is
/// EBUSY, and whose exits depend on nothing that bounds them. EBUSY always means "someone else
/// won" (an invalidation in progress, a competing migration, a page still referenced), so the rule
/// does not care which API returned it. A loop is bounded when one of its exit conditions (the loop
/// condition, or the condition of an <c>if</c> whose branch leaves the loop) reads a counter the
/// loop steps (<c>++</c>, <c>--</c>, compound assignment), a clock (Stopwatch, Environment.TickCount,
/// DateTime.Now, TimeProvider: the HMM_RANGE_DEFAULT_TIMEOUT deadline of test_hmm and nouveau), a
/// local set from a clock in the loop, or a cancellation token. It backs off when it sleeps or
/// yields, or starts a read section: ReadBegin sleeps until the colliding invalidation ends, which
/// is why the older Documentation/mm/hmm.rst loop (-EBUSY: goto again, back to read_begin) is
/// correct; the current one bounds the retries by HMM_RANGE_DEFAULT_TIMEOUT instead.
/// </summary>
internal static class RetryLoops
{
    private const int EbusyValue = 16;

    /// <summary>BCL calls that wait or give the CPU away before the next attempt.</summary>
    private static readonly string[] BackOffBcl =
    [
        "System.Threading.Thread.Sleep", "System.Threading.Thread.Yield", "System.Threading.Thread.SpinWait",
        "System.Threading.Tasks.Task.Delay", "System.Threading.SpinWait.SpinOnce", "System.Threading.SpinWait.SpinUntil",
    ];

    /// <summary>Scans one body: whether it backs off itself, and its unbounded EBUSY retry loops.</summary>
    public static void Scan(IOperation body, ContractSet contracts, MethodFacts facts)
    {
        foreach (var op in Walk(body))
        {
            if (op is IInvocationOperation inv && IsBackOff(inv, contracts)) facts.BacksOff = true;
            if (op is IWhileLoopOperation or IForLoopOperation) CheckLoop((ILoopOperation)op, contracts, facts);
        }
    }

    /// <summary>Whether a body has a back-off call (so a method that only sleeps still gets facts).</summary>
    public static bool HasBackOff(IOperation body, ContractSet contracts)
    {
        foreach (var op in Walk(body))
            if (op is IInvocationOperation inv && IsBackOff(inv, contracts)) return true;
        return false;
    }

    internal static bool IsBackOff(IInvocationOperation inv, ContractSet contracts)
    {
        var m = inv.TargetMethod;
        if (contracts.For(m).ReadBegin) return true;
        var t = m.ContainingType;
        if (t == null || SymbolNames.Of(t.ContainingNamespace) is not ("System.Threading" or "System.Threading.Tasks")) return false;
        string type = SymbolNames.Of(t), name = m.Name;
        foreach (var n in BackOffBcl)
            if (n.Length == type.Length + 1 + name.Length && n[type.Length] == '.' && n.StartsWith(type, StringComparison.Ordinal) && n.EndsWith(name, StringComparison.Ordinal)) return true;
        return false;
    }

    /// <summary>Descendants outside lambdas and local functions (they run elsewhere).</summary>
    private static IEnumerable<IOperation> Walk(IOperation root)
    {
        var stack = new Stack<IOperation>();
        stack.Push(root);
        while (stack.Count > 0)
        {
            var op = stack.Pop();
            yield return op;
            foreach (var c in op.ChildOperations)
                if (c is not (IAnonymousFunctionOperation or ILocalFunctionOperation)) stack.Push(c);
        }
    }

    private static bool IsEbusy(IOperation? op) =>
        op is { ConstantValue.HasValue: true, Type.TypeKind: TypeKind.Enum } && op.Type.Name == "Errno"
        && op.ConstantValue.Value is int v && v == EbusyValue;

    private static void CheckLoop(ILoopOperation loop, ContractSet contracts, MethodFacts facts)
    {
        var condition = loop switch { IWhileLoopOperation w => w.Condition, IForLoopOperation f => f.Condition, _ => null };
        IInvocationOperation? retried = null;
        foreach (var op in Walk(loop))
        {
            if (!EbusyTest(op, out var tested, out bool equalIsTrue)) continue;
            if (RetriedCall(loop, tested) is not { } call || NewInputs(call, loop)) continue;
            if (!RetriesOnBusy(loop, condition, op, equalIsTrue)) continue;
            retried = call;
            break;
        }
        if (retried == null || Bounded(loop, condition)) return;
        // hmm_range_fault itself retried: with ReadBegin in the loop it backs off, without it HMM1026 already reports the call.
        if (contracts.For(retried.TargetMethod).Snapshot) return;
        var callees = ImmutableArray.CreateBuilder<IMethodSymbol>();
        foreach (var op in Walk(loop))
        {
            if (op is not IInvocationOperation inv) continue;
            if (IsBackOff(inv, contracts)) return;
            if (SymbolNames.HasSource(inv.TargetMethod)) callees.Add(inv.TargetMethod.OriginalDefinition);
        }
        facts.BusyRetries.Add(new BusyRetryLoop(retried.Syntax.GetLocation(), retried.TargetMethod.ContainingType.Name + "." + retried.TargetMethod.Name, callees.ToImmutable()));
    }

    /// <summary><c>x == EBUSY</c>, <c>x != EBUSY</c>, <c>x is EBUSY</c>, <c>x is EBUSY or …</c>: the tested value and whether EBUSY makes the test true.</summary>
    private static bool EbusyTest(IOperation op, out IOperation tested, out bool equalIsTrue)
    {
        tested = op;
        equalIsTrue = true;
        switch (op)
        {
            case IBinaryOperation { OperatorKind: BinaryOperatorKind.Equals or BinaryOperatorKind.NotEquals } bin:
                if (IsEbusy(Unwrap(bin.RightOperand))) tested = bin.LeftOperand;
                else if (IsEbusy(Unwrap(bin.LeftOperand))) tested = bin.RightOperand;
                else return false;
                equalIsTrue = bin.OperatorKind == BinaryOperatorKind.Equals;
                return true;
            case IIsPatternOperation isp when PatternMatchesBusy(isp.Pattern) is bool m:
                tested = isp.Value;
                equalIsTrue = m;
                return true;
            default:
                return false;
        }
    }

    private static bool? PatternMatchesBusy(IPatternOperation p) => p switch
    {
        IConstantPatternOperation c when IsEbusy(Unwrap(c.Value)) => true,
        INegatedPatternOperation n => PatternMatchesBusy(n.Pattern) is bool b ? !b : null,
        IBinaryPatternOperation { OperatorKind: BinaryOperatorKind.Or } o => PatternMatchesBusy(o.LeftPattern) == true || PatternMatchesBusy(o.RightPattern) == true ? true : null,
        _ => null,
    };

    /// <summary>The Errno-returning call inside the loop whose result the test reads (directly, or through a local the loop assigns).</summary>
    private static IInvocationOperation? RetriedCall(ILoopOperation loop, IOperation tested)
    {
        var t = Unwrap(tested);
        if (t is ISimpleAssignmentOperation asg) t = Unwrap(asg.Value);
        if (t is IInvocationOperation inv) return inv;
        if (t is not ILocalReferenceOperation lr) return null;
        foreach (var op in Walk(loop))
        {
            IOperation? value = op switch
            {
                ISimpleAssignmentOperation a when Unwrap(a.Target) is ILocalReferenceOperation l && SymbolEqualityComparer.Default.Equals(l.Local, lr.Local) => a.Value,
                IVariableDeclaratorOperation d when SymbolEqualityComparer.Default.Equals(d.Symbol, lr.Local) => d.Initializer?.Value,
                _ => null,
            };
            if (Unwrap(value) is IInvocationOperation call) return call;
        }
        return null;
    }

    /// <summary>
    /// Whether the call gets different inputs on the next iteration (a work list: EBUSY skips an item,
    /// it does not retry it): an argument or the receiver reads something the loop writes or declares,
    /// or calls a method. Out arguments are outputs.
    /// </summary>
    private static bool NewInputs(IInvocationOperation call, ILoopOperation loop)
    {
        var written = new HashSet<ISymbol>(SymbolEqualityComparer.Default);
        foreach (var op in Walk(loop))
        {
            switch (op)
            {
                case IVariableDeclaratorOperation d: written.Add(d.Symbol); break;
                case IAssignmentOperation a when SymbolOf(a.Target) is { } s: written.Add(s); break;
                case IIncrementOrDecrementOperation i when SymbolOf(i.Target) is { } s: written.Add(s); break;
                case IDeclarationExpressionOperation de when Unwrap(de.Expression) is ILocalReferenceOperation l: written.Add(l.Local); break;
                case IArgumentOperation { Parameter.RefKind: RefKind.Ref or RefKind.Out } ra when SymbolOf(ra.Value) is { } s: written.Add(s); break;
            }
        }
        var inputs = new List<IOperation>();
        if (call.Instance != null) inputs.Add(call.Instance);
        foreach (var a in call.Arguments) if (a.Parameter?.RefKind != RefKind.Out) inputs.Add(a.Value);
        foreach (var input in inputs)
            foreach (var op in Walk(input))
            {
                if (op is IInvocationOperation) return true;
                if (SymbolOf(op) is { } s && written.Contains(s)) return true;
            }
        return false;
    }

    /// <summary>Whether an EBUSY outcome of the test leads to another iteration.</summary>
    private static bool RetriesOnBusy(ILoopOperation loop, IOperation? condition, IOperation test, bool equalIsTrue)
    {
        // Climb through !, && and || to the condition that decides.
        bool positive = equalIsTrue;
        var at = test;
        var parent = at.Parent;
        while (parent is IUnaryOperation { OperatorKind: UnaryOperatorKind.Not } or IParenthesizedOperation
            or IBinaryOperation { OperatorKind: BinaryOperatorKind.ConditionalAnd or BinaryOperatorKind.ConditionalOr })
        {
            if (parent is IUnaryOperation) positive = !positive;
            at = parent;
            parent = parent.Parent;
        }
        if (condition != null && at == condition) return positive;   // while (e == EBUSY) …: true keeps looping
        if (parent is not IConditionalOperation { IsRef: false } branch || branch.Condition != at) return false;
        var taken = positive ? branch.WhenTrue : branch.WhenFalse;
        if (taken != null)
        {
            if (ContinuesLoop(taken, loop)) return true;
            if (ExitsLoop(taken, loop)) return false;
        }
        // EBUSY falls through the if: a retry when nothing after it at the top of the body leaves the loop.
        if (branch.Parent is not IBlockOperation block || block.Parent != loop) return false;
        bool after = false;
        foreach (var s in block.Operations)
        {
            if (s == branch) { after = true; continue; }
            if (after && s is IReturnOperation or IThrowOperation or IExpressionStatementOperation { Operation: IThrowOperation }) return false;
            if (after && s is IBranchOperation b && SymbolEqualityComparer.Default.Equals(b.Target, loop.ExitLabel)) return false;
        }
        return true;
    }

    private static IOperation Last(IOperation op) => op is IBlockOperation { Operations.Length: > 0 } b ? Last(b.Operations[b.Operations.Length - 1]) : op;

    private static bool ContinuesLoop(IOperation branch, ILoopOperation loop) =>
        Last(branch) is IBranchOperation b && SymbolEqualityComparer.Default.Equals(b.Target, loop.ContinueLabel);

    private static bool ExitsLoop(IOperation branch, ILoopOperation loop) => Last(branch) switch
    {
        IReturnOperation => true,
        IThrowOperation => true,
        IExpressionStatementOperation { Operation: IThrowOperation } => true,
        IBranchOperation b => SymbolEqualityComparer.Default.Equals(b.Target, loop.ExitLabel) || b.BranchKind == BranchKind.GoTo,
        _ => false,
    };

    // ---- bounds ------------------------------------------------------------------------------

    private static bool Bounded(ILoopOperation loop, IOperation? condition)
    {
        var stepped = new HashSet<ISymbol>(SymbolEqualityComparer.Default);
        foreach (var op in Walk(loop))
        {
            switch (op)
            {
                case IIncrementOrDecrementOperation inc when SymbolOf(inc.Target) is { } s: stepped.Add(s); break;
                case ICompoundAssignmentOperation ca when SymbolOf(ca.Target) is { } s: stepped.Add(s); break;
                case ISimpleAssignmentOperation a when SymbolOf(a.Target) is { } s && ReadsClock(a.Value): stepped.Add(s); break;
                case IVariableDeclaratorOperation d when d.Initializer != null && ReadsClock(d.Initializer.Value): stepped.Add(d.Symbol); break;
                case IInvocationOperation { TargetMethod.Name: "ThrowIfCancellationRequested" }: return true;
            }
        }
        if (condition != null && ReadsBound(condition, stepped)) return true;
        foreach (var op in Walk(loop))
            if (op is IConditionalOperation { IsRef: false } c && c.Condition != null
                && (Leaves(c.WhenTrue, loop) || Leaves(c.WhenFalse, loop)) && ReadsBound(c.Condition, stepped)) return true;
        return false;
    }

    private static ISymbol? SymbolOf(IOperation? op) => Unwrap(op) switch
    {
        ILocalReferenceOperation l => l.Local,
        IFieldReferenceOperation f => f.Field,
        IParameterReferenceOperation p => p.Parameter,
        IPropertyReferenceOperation p => p.Property,
        _ => null,
    };

    private static bool Leaves(IOperation? branch, ILoopOperation loop)
    {
        if (branch == null) return false;
        foreach (var op in Walk(branch))
            if (op is IReturnOperation or IThrowOperation || op is IBranchOperation b && SymbolEqualityComparer.Default.Equals(b.Target, loop.ExitLabel)) return true;
        return false;
    }

    private static bool ReadsBound(IOperation cond, HashSet<ISymbol> stepped)
    {
        foreach (var op in Walk(cond))
        {
            if (SymbolOf(op) is { } s && stepped.Contains(s)) return true;
            if (op is IIncrementOrDecrementOperation) return true;   // tries++ < N in the condition itself
            if (IsClock(op)) return true;
        }
        return false;
    }

    private static bool ReadsClock(IOperation op)
    {
        foreach (var d in Walk(op)) if (IsClock(d)) return true;
        return false;
    }

    /// <summary>A read of time or of a cancellation token.</summary>
    private static bool IsClock(IOperation op)
    {
        ISymbol? member = op switch
        {
            IInvocationOperation i => i.TargetMethod,
            IPropertyReferenceOperation p => p.Property,
            _ => null,
        };
        if (member?.ContainingType is not { } t) return false;
        string name = SymbolNames.Of(t);
        return name switch
        {
            "System.Diagnostics.Stopwatch" or "System.TimeProvider" or "System.Threading.CancellationToken" => true,
            "System.Environment" => member.Name is "TickCount" or "TickCount64",
            "System.DateTime" or "System.DateTimeOffset" => member.Name is "Now" or "UtcNow",
            _ => false,
        };
    }
}
