using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Operations;
using static Hmm.Analyzers.Flow.OperationTrees;

namespace Hmm.Analyzers.Flow;

/// <summary>
/// Ownership handed to a data structure: a reference taken into a local is not leaked when the
/// body stores that local into a field, a property, an array element or a collection — the object
/// now owns it, and whoever tears that object down drops it (a peer's pagemap kept for the lifetime
/// of an import, a DMA address kept in the device's table). The flow engine applies
/// <see cref="IsStored"/> where the store happens (MethodFlow.StoreAway), so a path that returns
/// before the store still owns the reference and its leak is reported.
/// </summary>
internal static class ReferenceEscapes
{
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
    internal static bool IsLeak(string id) => id is "HMM1023" or "HMM1025" or "HMM1041" or "HMM1050";

    /// <summary>Whether this read of a local hands its value to the heap: a field/property/element store, an initializer, a collection add.</summary>
    internal static bool IsStored(IOperation read)
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
}
