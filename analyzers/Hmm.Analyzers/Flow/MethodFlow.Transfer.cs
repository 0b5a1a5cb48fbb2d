using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

using Hmm.Analyzers.Rules;

namespace Hmm.Analyzers.Flow;

// MethodFlow, transfer over one operation: the visitor, guarded member accesses and assignments.
internal sealed partial class MethodFlow
{
    private FlowState Transfer(IOperation op, FlowState state, bool quiet)
    {
        bool report = _report;
        if (quiet) _report = false;
        try { return Visit(op, state); }
        finally { _report = report; }
    }

    private FlowState Visit(IOperation op, FlowState state)
    {
        switch (op)
        {
            case IFlowAnonymousFunctionOperation:
            case ILocalFunctionOperation:
                return state;
            case IFlowCaptureOperation cap:
                _captures[cap.Id] = cap.Value;
                // `pfns[i] = c ? a : b` captures the element reference before the branch: an lvalue, not a read.
                if (cap.Value is IArrayElementReferenceOperation lvalue && WrittenCaptures.Contains(cap.Id))
                {
                    foreach (var c in lvalue.ChildOperations) state = Visit(c, state);
                    return state;
                }
                return Visit(cap.Value, state);
            case IInvocationOperation inv:
                if (inv.Instance != null) state = Visit(inv.Instance, state);
                foreach (var a in inv.Arguments) state = Visit(a.Value, state);
                return ApplyCall(inv, state);
            case ISimpleAssignmentOperation asg:
                state = Visit(asg.Value, state);
                state = VisitChildrenOfTarget(asg.Target, state);
                return Assign(asg, state);
            case IPropertyReferenceOperation pr:
                if (pr.Instance != null) state = Visit(pr.Instance, state);
                foreach (var a in pr.Arguments) state = Visit(a.Value, state);
                return MemberAccess(pr, pr.Property, state);
            case IFieldReferenceOperation fr:
                if (fr.Instance != null) state = Visit(fr.Instance, state);
                return MemberAccess(fr, fr.Field, state);
            case ILocalReferenceOperation or IParameterReferenceOperation when !state.Refs.IsEmpty:
                return StoreAway(op, state);
            case IArrayElementReferenceOperation ae:
                foreach (var c in ae.ChildOperations) state = Visit(c, state);
                if (!IsWriteTarget(ae) && Unwrap(ae.ArrayReference) is IPropertyReferenceOperation { Property.Name: "HmmPfns" } p
                    && _contracts.Is(p.Property.ContainingType, KnownNames.HmmRange))
                    Consume(state, ae.Syntax.GetLocation());
                return state;
            default:
                foreach (var c in op.ChildOperations) state = Visit(c, state);
                return state;
        }
    }

    /// <summary>
    /// A keepable reference (mm, DMA address, pagemap, pin) held in a local or parameter and stored into a field, element, initializer,
    /// collection or new object is handed to that object at this point: paths that reach here no
    /// longer own it, paths that returned before it still do (their leak is reported).
    /// </summary>
    private FlowState StoreAway(IOperation read, FlowState state)
    {
        if (RefKey(read) is not { } key || state.FindRef(key) is var i && i < 0) return state;
        if (!ReferenceEscapes.IsLeak(HmmRules.ForReference(state.Refs[i].Kind).Id) || !ReferenceEscapes.IsStored(read)) return state;
        return state.WithRefs(state.Refs.RemoveAt(i));
    }

    private HashSet<CaptureId>? _writtenCaptures;

    /// <summary>Flow captures the graph later assigns through (captured lvalues).</summary>
    private HashSet<CaptureId> WrittenCaptures
    {
        get
        {
            if (_writtenCaptures != null) return _writtenCaptures;
            var set = new HashSet<CaptureId>();
            foreach (var b in _cfg.Blocks)
                foreach (var op in b.Operations)
                    foreach (var d in op.DescendantsAndSelf())
                        if (d is IAssignmentOperation { Target: IFlowCaptureReferenceOperation r }) set.Add(r.Id);
            return _writtenCaptures = set;
        }
    }

    private FlowState VisitChildrenOfTarget(IOperation target, FlowState state)
    {
        switch (target)
        {
            case IPropertyReferenceOperation pr:
                if (pr.Instance != null) state = Visit(pr.Instance, state);
                return MemberAccess(pr, pr.Property, state);
            case IFieldReferenceOperation fr:
                if (fr.Instance != null) state = Visit(fr.Instance, state);
                return MemberAccess(fr, fr.Field, state);
            case IArrayElementReferenceOperation ae:
                foreach (var c in ae.ChildOperations) state = Visit(c, state);
                return state;
            default:
                return state;
        }
    }

    private static bool IsWriteTarget(IOperation op)
    {
        var p = op.Parent;
        while (p is IConversionOperation or IParenthesizedOperation) { op = p; p = p.Parent; }
        return p switch
        {
            IAssignmentOperation a => a.Target == op,
            IIncrementOrDecrementOperation => true,
            IArgumentOperation arg => arg.Parameter?.RefKind is RefKind.Ref or RefKind.Out,
            _ => false,
        };
    }

    private FlowState MemberAccess(IOperation reference, ISymbol member, FlowState state)
    {
        if (_contracts.Is(member.ContainingType, KnownNames.NotifierRange))
        {
            if (member.Name == "Event") return state.WithFlags(state.Flags | FlowFlags.EventChecked);
            if (member.Name != "Owner") return state;
            if (state.Has(FlowFlags.EventChecked)) return state.WithFlags(state.Flags | FlowFlags.OwnerFiltered);
            if ((_facts.Context & CallbackContext.Notifier) != 0) Report(HmmRules.OwnerWithoutEvent, reference.Syntax.GetLocation());
            return state;
        }
        if (_contracts.GuardOf(member) is not { } guard) return state;
        var method = _facts.Method;
        if (method.MethodKind is MethodKind.Constructor or MethodKind.StaticConstructor
            && SymbolEqualityComparer.Default.Equals(method.ContainingType, member.ContainingType)) return state;
        if (ResolvePath(guard, member.ContainingType) is not { } key) return state;
        bool write = IsWriteTarget(reference);
        if (!Holds(state, key, shared: !write) && _report)
            _facts.Needs.Add(new LockNeed(key, !write, reference.Syntax.GetLocation(), (write ? "writing '" : "reading '") + member.Name + "'", NeedKind.GuardedAccess));
        return state;
    }

    private FlowState Assign(ISimpleAssignmentOperation asg, FlowState state)
    {
        // A fresh notifier in the variable: the removed one is gone.
        if (RefKey(asg.Target) is { } tk && state.FindRef(tk) is var ti && ti >= 0 && state.Refs[ti].Kind == RemovedNotifier)
            state = state.WithRefs(state.Refs.RemoveAt(ti));
        if (Unwrap(asg.Target) is not ILocalReferenceOperation lr) return state;
        var local = lr.Local;
        var tries = state.Tries;
        for (int i = tries.Length - 1; i >= 0; i--) if (SymbolEqualityComparer.Default.Equals(tries[i].Local, local)) tries = tries.RemoveAt(i);
        if (Unwrap(asg.Value) is IInvocationOperation inv)
        {
            var c = _contracts.For(inv.TargetMethod);
            bool isTry = c.ReadRetry || (c.RefAcquireKind != null && c.RefAcquireWhen != 0);
            foreach (var e in c.LockEffects) isTry |= e.Kind is LockEffectKind.TryAcquire or LockEffectKind.TryAcquireShared;
            if (isTry) tries = tries.Add(new PendingTry(local, inv));
            if (c.RefAcquireKind != null && c.RefAcquireTarget == "return" && c.RefAcquireWhen == 0)
                state = AddRef(state, RefKey(lr)!, c.RefAcquireKind, inv.Syntax.GetLocation());
        }
        return tries == state.Tries ? state : state.WithTries(tries);
    }

}
