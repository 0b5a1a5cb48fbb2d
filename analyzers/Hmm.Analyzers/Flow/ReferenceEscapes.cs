using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace Hmm.Analyzers.Flow;

/// <summary>
/// Ownership handed to a data structure: a reference the flow engine saw taken into a local and
/// still owned at exit is not a leak when the body stores that local into a field, a property,
/// an array element or a collection — the object now owns it, and whoever tears that object down
/// drops it (a peer's pagemap kept for the lifetime of an import, a DMA address kept in the
/// device's table). The engine follows locals, not heap cells, so without this every correct
/// driver that keeps a reference would be reported. Conservative by construction: a store
/// anywhere in the body clears the verdict on every path (a path that leaks before the store is
/// missed, never invented).
/// </summary>
internal static class ReferenceEscapes
{
    /// <summary>Drops leak verdicts (reported now or pending on callees) of references the body stores away.</summary>
    public static void Forget(IOperation body, MethodFacts facts)
    {
        if (facts.Diagnostics.Count == 0 && facts.PendingLeaks.Count == 0) return;
        HashSet<int>? stored = null;
        for (int i = facts.Diagnostics.Count - 1; i >= 0; i--)
        {
            var d = facts.Diagnostics[i];
            if (!IsLeak(d.Descriptor.Id)) continue;
            stored ??= StoredAcquisitions(body);
            if (stored.Contains(d.Location.SourceSpan.Start)) facts.Diagnostics.RemoveAt(i);
        }
        for (int i = facts.PendingLeaks.Count - 1; i >= 0; i--)
        {
            stored ??= StoredAcquisitions(body);
            if (stored.Contains(facts.PendingLeaks[i].Site.SourceSpan.Start)) facts.PendingLeaks.RemoveAt(i);
        }
    }

    /// <summary>
    /// Parameters the body stores away (a helper putting the caller's reference into the device's
    /// table): for the caller's pending-leak check such a helper takes the reference over, as one
    /// that releases it does. Null when there are none.
    /// </summary>
    public static HashSet<string>? StoredParameters(IOperation body, IMethodSymbol method)
    {
        if (method.Parameters.IsEmpty) return null;
        HashSet<string>? result = null;
        foreach (var op in body.Descendants())
            if (op is IParameterReferenceOperation pr && IsStored(pr)) (result ??= new(StringComparer.Ordinal)).Add(pr.Parameter.Name);
        return result;
    }

    // The reference-leak rules whose object is a value a driver may keep (not a lock, not a protocol step).
    private static bool IsLeak(string id) => id is "HMM1023" or "HMM1025" or "HMM1041";

    /// <summary>Start positions of calls whose result (or out argument) lands in a local the body stores away.</summary>
    private static HashSet<int> StoredAcquisitions(IOperation body)
    {
        var storedLocals = new HashSet<ILocalSymbol>(SymbolEqualityComparer.Default);
        foreach (var op in body.Descendants())
            if (op is ILocalReferenceOperation lr && IsStored(lr)) storedLocals.Add(lr.Local);
        var result = new HashSet<int>();
        if (storedLocals.Count == 0) return result;
        foreach (var op in body.Descendants())
        {
            switch (op)
            {
                case IVariableDeclaratorOperation d when d.Initializer != null && storedLocals.Contains(d.Symbol) && Unwrap(d.Initializer.Value) is IInvocationOperation inv:
                    result.Add(inv.Syntax.SpanStart);
                    break;
                case ISimpleAssignmentOperation a when Unwrap(a.Target) is ILocalReferenceOperation t && storedLocals.Contains(t.Local) && Unwrap(a.Value) is IInvocationOperation inv2:
                    result.Add(inv2.Syntax.SpanStart);
                    break;
                case IInvocationOperation call:
                    foreach (var arg in call.Arguments)
                        if (arg.Parameter?.RefKind == RefKind.Out && OutLocal(arg.Value) is { } ol && storedLocals.Contains(ol))
                            result.Add(call.Syntax.SpanStart);
                    break;
            }
        }
        return result;
    }

    private static ILocalSymbol? OutLocal(IOperation value) => Unwrap(value) switch
    {
        ILocalReferenceOperation l => l.Local,
        IDeclarationExpressionOperation { Expression: ILocalReferenceOperation l } => l.Local,
        _ => null,
    };

    /// <summary>Whether this read of a local hands its value to the heap: a field/property/element store, an initializer, a collection add.</summary>
    private static bool IsStored(IOperation read)
    {
        IOperation at = read;
        var parent = read.Parent;
        while (parent is IConversionOperation or IParenthesizedOperation) { at = parent; parent = parent.Parent; }
        switch (parent)
        {
            case ISimpleAssignmentOperation a when a.Value == at:
                return Unwrap(a.Target) is IFieldReferenceOperation or IPropertyReferenceOperation or IArrayElementReferenceOperation;
            case IArrayInitializerOperation:
            case IMemberInitializerOperation:
                return true;
            case IArgumentOperation arg when arg.Parent is IInvocationOperation call:
                // Collection.Add(x) and friends: a BCL collection now holds it.
                return SymbolNames.Of(call.TargetMethod.ContainingNamespace)?.StartsWith("System.Collections", StringComparison.Ordinal) == true;
            case IArgumentOperation { Parent: IObjectCreationOperation } arg2:
                // new Holder(x): the constructed object keeps it.
                return arg2.Parameter?.RefKind == RefKind.None;
            default:
                return false;
        }
    }

    private static IOperation? Unwrap(IOperation? op)
    {
        while (op is IConversionOperation or IParenthesizedOperation)
            op = op is IConversionOperation c ? c.Operand : ((IParenthesizedOperation)op).Operand;
        return op;
    }
}
