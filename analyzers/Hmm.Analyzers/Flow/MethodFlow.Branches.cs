using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

using Hmm.Analyzers.Rules;

namespace Hmm.Analyzers.Flow;

// MethodFlow, branch refinement: what a condition's outcome proves (trylock taken, ReadRetry no collision, Blockable, null owner).
internal sealed partial class MethodFlow
{
    private FlowState Refine(FlowState state, IOperation cond, bool outcome)
    {
        cond = Unwrap(cond)!;
        switch (cond)
        {
            case IUnaryOperation { OperatorKind: UnaryOperatorKind.Not } not:
                return Refine(state, not.Operand, !outcome);
            case IPropertyReferenceOperation { Property.Name: "Blockable" } p when _contracts.Is(p.Property.ContainingType, KnownNames.NotifierRange):
                return state.WithFlags(state.Flags | (outcome ? FlowFlags.KnownBlockable : FlowFlags.KnownNonBlockable));
            case IInvocationOperation inv:
                return RefineCall(state, inv, outcome);
            case ILocalReferenceOperation lr:
                return RefineLocal(state, lr.Local, outcome);
            case IBinaryOperation { OperatorKind: BinaryOperatorKind.Equals or BinaryOperatorKind.NotEquals } bin:
            {
                IOperation? other;
                object? c;
                if (bin.RightOperand.ConstantValue.HasValue) { other = bin.LeftOperand; c = bin.RightOperand.ConstantValue.Value; }
                else if (bin.LeftOperand.ConstantValue.HasValue) { other = bin.RightOperand; c = bin.LeftOperand.ConstantValue.Value; }
                else return state;
                bool equal = (bin.OperatorKind == BinaryOperatorKind.Equals) == outcome;
                return RefineCompare(state, other, c, equal);
            }
            case IIsNullOperation isNull:
                return outcome ? DropRef(state, isNull.Operand) : state;
            case IIsPatternOperation { Pattern: IConstantPatternOperation cp } isp when cp.Value.ConstantValue.HasValue:
                return RefineCompare(state, isp.Value, cp.Value.ConstantValue.Value, outcome);
            case IIsPatternOperation { Pattern: INegatedPatternOperation { Pattern: IConstantPatternOperation cp } } isn when cp.Value.ConstantValue.HasValue:
                return RefineCompare(state, isn.Value, cp.Value.ConstantValue.Value, !outcome);
            default:
                return state;
        }
    }

    /// <summary>value == c (equal) or value != c: truthy = "returned true" or "returned Errno.Ok".</summary>
    private FlowState RefineCompare(FlowState state, IOperation value, object? c, bool equal)
    {
        if (c == null) return equal ? DropRef(state, value) : state;   // a null owner holds nothing
        bool? truthy = c switch
        {
            bool b => equal ? b : !b,
            _ when IsZero(c) => equal,
            _ => equal ? false : null,
        };
        if (truthy is not bool t) return DropTry(state, value);
        value = Unwrap(value)!;
        if (value is IInvocationOperation inv) return RefineCall(state, inv, t);
        if (value is ILocalReferenceOperation lr) return RefineLocal(state, lr.Local, t);
        return state;
    }

    private static bool IsZero(object? c) => c switch
    {
        int i => i == 0,
        long l => l == 0,
        uint u => u == 0,
        ulong ul => ul == 0,
        short s => s == 0,
        byte b => b == 0,
        _ => false,
    };

    private FlowState DropRef(FlowState state, IOperation value)
    {
        if (RefKey(value) is not { } k) return state;
        int i = state.FindRef(k);
        return i < 0 ? state : state.WithRefs(state.Refs.RemoveAt(i));
    }

    private FlowState DropTry(FlowState state, IOperation value)
    {
        if (Unwrap(value) is not ILocalReferenceOperation lr) return state;
        var tries = state.Tries;
        for (int i = tries.Length - 1; i >= 0; i--) if (SymbolEqualityComparer.Default.Equals(tries[i].Local, lr.Local)) tries = tries.RemoveAt(i);
        return tries == state.Tries ? state : state.WithTries(tries);
    }

    private FlowState RefineLocal(FlowState state, ILocalSymbol local, bool truthy)
    {
        foreach (var t in state.Tries)
            if (SymbolEqualityComparer.Default.Equals(t.Local, local))
                return RefineCall(state.WithTries(state.Tries.Remove(t)), t.Call, truthy);
        return state;
    }

    private FlowState RefineCall(FlowState state, IInvocationOperation inv, bool truthy)
    {
        var m = inv.TargetMethod;
        var c = _contracts.For(m);
        var loc = inv.Syntax.GetLocation();
        if (truthy)
        {
            foreach (var e in c.LockEffects)
                if (e.Kind is LockEffectKind.TryAcquire or LockEffectKind.TryAcquireShared && Resolve(_contracts, e.Target, m, inv) is { } key)
                    state = Acquire(state, key, e.Kind == LockEffectKind.TryAcquireShared, loc, inv);
            if (c.RefAcquireKind != null && c.RefAcquireWhen != 0 && Target(inv, c.RefAcquireTarget!) is { } t && RefKey(t) is { } rk)
                state = AddRef(state, rk, c.RefAcquireKind, loc);
        }
        else if (c.ReadRetry)
        {
            // No collision: the snapshot is valid for as long as the innermost exclusive lock (U) stays held.
            string? u = null;
            foreach (var h in state.Locks) if (h.Must && !h.Shared) u = h.Key;
            if (u != null) state = state.WithValidation(state.Flags & ~FlowFlags.SnapshotPending, u);
        }
        return state;
    }

}
